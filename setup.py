from setuptools import setup

with open("requirements.txt") as f:
    requirements = [line.strip() for line in f if line.strip() and not line.startswith("#")]

setup(
    name="calibrated-prompt-tuning",
    version="0.1.0",
    description="Calibrated prompt tuning of CLIP: Dassl-compatible engine, prompt learners, calibration",
    packages=["engine", "engine.data", "calibration", "trainers", "datasets", "dassl_patches"],
    py_modules=["train"],
    package_data={"trainers": ["weights/*"], "calibration": ["data/*"]},
    include_package_data=True,
    python_requires=">=3.9",
    install_requires=requirements,
)
