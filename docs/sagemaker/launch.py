"""Launch `kwslab run` as a SageMaker training job (an example: edit the names, then run it
on a machine with AWS credentials: ``pip install sagemaker && python docs/sagemaker/launch.py``).

1. Upload the data once: ``aws s3 sync speech_commands/ s3://BUCKET/kwslab/speech_commands/``
   (the Speech Commands folder: one sub-folder per word, ``_background_noise_``, and the
   validation/testing lists).
2. Run this script from the repository root. SageMaker copies ``docs/sagemaker`` (this
   folder: ``train.py`` + ``requirements.txt``) and ``src/kwslab`` into the container,
   downloads the S3 data to ``/opt/ml/input/data/training`` and runs
   ``python train.py --epochs 200 --words yes,no ...``.
3. When the job ends, ``model.tar.gz`` (checkpoint, ``model.tflite``, C files, settings
   header) and ``output.tar.gz`` (report, plots) are in ``s3://BUCKET/kwslab/jobs/``.
"""
from sagemaker.pytorch import PyTorch

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"  # your SageMaker role
BUCKET = "my-bucket"                                              # your S3 bucket

estimator = PyTorch(
    entry_point="train.py",
    source_dir="docs/sagemaker",
    dependencies=["src/kwslab"],
    role=ROLE,
    framework_version="2.3",
    py_version="py311",
    instance_count=1,
    instance_type="ml.m5.xlarge",   # CPU is enough: tiny_conv trains in well under a minute
    output_path=f"s3://{BUCKET}/kwslab/jobs",
    hyperparameters={
        "model": "tiny_conv",
        "words": "yes,no",
        "epochs": 200,
        "seed": 0,
        "batch-size": 100,
        "no-augment": False,
    },
)

if __name__ == "__main__":
    estimator.fit({"training": f"s3://{BUCKET}/kwslab/speech_commands/"})
    print("model archive:", estimator.model_data)
