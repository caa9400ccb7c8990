"""Shared test vectors made by `convlstm_torch`, and the checks that hold both frameworks to them."""
