from .data_manager import DataManager, DatasetWrapper, build_data_loader
from .datasets import (
    DATASET_REGISTRY,
    DatasetBase,
    Datum,
    apply_fewshot_and_subsample,
    build_dataset,
    class_split_indices,
    generate_fewshot,
    read_split,
    save_split,
    subsample_classes,
)
from .transforms import build_transform
