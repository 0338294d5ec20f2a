"""A stand-in for Colab's ``google.colab`` package, for the emulated-Colab test only.

Put ``tests/colab_standin`` on ``PYTHONPATH`` (``google`` is a namespace package, so
protobuf's ``google.protobuf`` still imports). What it emulates:

* ``drive.mount(mountpoint)``: a symbolic link from mountpoint to the folder named by
  ``$KWSLAB_EMULATED_DRIVE`` (which holds ``MyDrive/``), shared by all "runtimes";
  with ``$KWSLAB_EMULATED_DRIVE`` unset it fails the way a declined authorisation does.
* ``output.eval_js(code)``: no browser: raises, as a failed microphone permission does.
* ``files.download(path)``: records the path in ``$KWSLAB_EMULATED_DOWNLOADS`` (one per line).
"""
