"""Stand-in for ``google.colab.drive`` (see the package docstring)."""
import os


def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
    target = os.environ.get("KWSLAB_EMULATED_DRIVE")
    if not target:
        raise ValueError("mount failed: credential propagation was unsuccessful")
    if os.path.islink(mountpoint) or os.path.isdir(os.path.join(mountpoint, "MyDrive")):
        print(f"Drive already mounted at {mountpoint}")
        return
    os.makedirs(os.path.join(target, "MyDrive"), exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(mountpoint)), exist_ok=True)
    os.symlink(target, mountpoint)
    print(f"Mounted at {mountpoint}")
