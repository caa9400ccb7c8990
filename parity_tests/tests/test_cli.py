import shutil

import pytest

pytest.importorskip("torch", reason="needs torch, the reference (not installed in this virtualenv)")

import torch

import convlstm_torch
from parity_tests import cli
from parity_tests.vectors import VECTORS_DIR, load_case, load_manifest, write_case, write_manifest


def test_a_passing_case_exits_zero(capsys):
    assert cli.main(["--case", "one_step", "--channels-last"]) == 0
    out = capsys.readouterr().out
    assert "one_step: in=2, layers=[4@3x3], peephole='conv'" in out
    assert out.count("  pass") == 5 and "5 passed, 0 failed (1 cases" in out


def test_a_wrong_expected_value_fails_and_names_it(tmp_path, capsys):
    shutil.copytree(VECTORS_DIR, tmp_path, dirs_exist_ok=True)
    manifest = load_manifest(tmp_path)
    arrays = load_case("one_step", tmp_path, manifest)
    arrays["expected/c/0"] = arrays["expected/c/0"] + 1e-3  # what a wrong formula would produce
    manifest["cases"]["one_step"]["sha256"] = write_case(tmp_path / "one_step.safetensors", arrays)
    write_manifest(tmp_path, manifest)
    assert cli.main(["--vectors", str(tmp_path), "--case", "one_step"]) == 1
    out = capsys.readouterr().out
    assert out.count("FAIL at c/0") == 4 and "0 passed, 4 failed" in out


def test_tampered_vectors_exit_two(tmp_path, capsys):
    shutil.copytree(VECTORS_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "one_step.safetensors").write_bytes(b"not a vector")
    assert cli.main(["--vectors", str(tmp_path), "--case", "one_step"]) == 2
    assert "one_step.safetensors has sha256" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_users_checkpoint(tmp_path, capsys, suffix):
    torch.manual_seed(0)
    model = convlstm_torch.ConvLSTM(2, [6, 3], [(3, 3), (1, 5)], 2, peephole="hadamard")
    path = tmp_path / f"model{suffix}"
    if suffix == ".pt":
        torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
        args = ["--prefix", "module."]
    else:
        from safetensors.torch import save_file

        save_file(model.state_dict(), str(path))
        args = []
    assert cli.main(["--checkpoint", str(path), "--shape", "1,3,7,5", *args]) == 0
    out = capsys.readouterr().out
    assert "in=2, layers=[6@3x3, 3@1x5], peephole='hadamard', bias" in out and "3 passed, 0 failed" in out
    assert "torch              float64" not in out  # the expected values are torch float64's: no run of its own


def test_a_checkpoint_that_is_no_convlstm_exits_two(tmp_path, capsys):
    torch.save({"linear.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    assert cli.main(["--checkpoint", str(tmp_path / "other.pt")]) == 2
    assert "holds no ConvLSTM layer" in capsys.readouterr().err


def test_without_torch_the_jax_port_is_checked_alone(monkeypatch, capsys):
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None)
    assert cli.main(["--case", "one_step"]) == 0
    out = capsys.readouterr().out
    assert "checking the JAX port alone" in out and "2 passed, 0 failed" in out


def test_bad_arguments_exit_two():
    with pytest.raises(SystemExit) as info:
        cli.main(["--checkpoint", "x.pt", "--shape", "1,2"])
    assert info.value.code == 2


def test_the_nnx_front_runs_beside_linen(capsys):
    assert cli.main(["--case", "one_step", "--case", "bidirectional_sum", "--framework", "jax", "--nnx"]) == 0
    for case in capsys.readouterr().out.split("\n\n")[:2]:
        assert "jax nnx            float32" in case and "pass" in case


def test_a_checkpoint_of_volumes_takes_a_volumes_shape(tmp_path, capsys):
    torch.manual_seed(0)
    model = convlstm_torch.ConvLSTM(1, 3, (3, 1, 3), 1, peephole=None, spatial_dims=3)
    path = tmp_path / "volumes.pt"
    torch.save(model.state_dict(), path)
    assert cli.main(["--checkpoint", str(path), "--shape", "1,2,3,4,5"]) == 0
    assert "layers=[3@3x1x3]" in capsys.readouterr().out
    assert cli.main(["--checkpoint", str(path), "--shape", "1,2,4,5"]) == 2
    assert "the checkpoint's convolutions are 3-D: --shape takes B,T,D,H,W" in capsys.readouterr().err
