"""Stand-in for ``google.colab.output`` (see the package docstring)."""


def eval_js(script, ignore_result=False, timeout_sec=None):
    raise RuntimeError("NotAllowedError: Permission denied (emulated Colab has no browser)")
