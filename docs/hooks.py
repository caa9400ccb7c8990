"""MkDocs hook: pages whose source lives outside `docs/`, read from where they are (no copies).

`BENCHMARKS.md`, `notebooks/README.md` (the Notebooks section's index) and the notebooks' `.ipynb`
files (rendered by mkdocs-jupyter as stored, not executed) keep their paths in the repository.
"""

from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

PAGES = ("BENCHMARKS.md", "notebooks/README.md", "notebooks/*.ipynb")


@event_priority(100)  # before mkdocs-jupyter looks for notebooks among the files
def on_files(files: Files, config) -> Files:
    root = Path(config.config_file_path).parent
    for pattern in PAGES:
        for path in sorted(root.glob(pattern)):
            uri = path.relative_to(root).as_posix()
            files.append(File(uri, str(root), config.site_dir, config.use_directory_urls))
    return files
