"""Stand-in for ``google.colab.files`` (see the package docstring)."""
import os


def download(filename):
    if not os.path.exists(filename):
        raise FileNotFoundError(f"Cannot find file: {filename}")
    log = os.environ.get("KWSLAB_EMULATED_DOWNLOADS")
    if log:
        with open(log, "a") as f:
            f.write(os.path.abspath(filename) + "\n")
