"""SageMaker entry point: runs `kwslab run` inside the training container.

The launcher (launch.py) ships this folder as the job's source_dir and the kwslab package
beside it (``dependencies``); the container installs requirements.txt and runs
``python train.py --epochs ... --words ...``.
"""
import sys

from kwslab.sagemaker_entry import main

if __name__ == "__main__":
    sys.exit(main())
