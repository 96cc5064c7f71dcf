"""``DataManager``: builds the dataset, transforms and loaders (Dassl's API).

Batches are dicts with ``img`` (float tensor), ``label`` (long for single-label, float multi-hot with
-1 for unknown for multi-label), ``impath``, ``index`` (position in the split, used to de-duplicate
DDP gathers) and ``domain``. The training loader keeps the last, smaller batch (no ``drop_last``),
so a tiny few-shot set loses no samples.
"""
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..utils import is_distributed, read_image
from .datasets import build_dataset
from .transforms import build_transform


class DatasetWrapper(Dataset):
    def __init__(self, data_source, transform, k_transforms=1, return_img0=False):
        self.data_source = data_source
        self.transform = transform
        self.k_transforms = k_transforms
        self.return_img0 = return_img0

    def __len__(self):
        return len(self.data_source)

    def __getitem__(self, idx):
        item = self.data_source[idx]
        label = item.label
        label = torch.as_tensor(np.asarray(label, dtype=np.float32)) if item.is_multilabel else int(label)
        img0 = read_image(item.impath)
        k = self.k_transforms
        img = [self.transform(img0) for _ in range(k)] if k > 1 else self.transform(img0)
        out = {"img": img, "label": label, "impath": item.impath, "index": idx, "domain": item.domain}
        if self.return_img0:
            import torchvision.transforms.functional as F

            out["img0"] = F.to_tensor(img0)
        return out


def build_data_loader(cfg, data_source, batch_size, tfm, is_train, shuffle=None):
    dataset = DatasetWrapper(data_source, tfm, cfg.DATALOADER.K_TRANSFORMS if is_train else 1,
                             cfg.DATALOADER.RETURN_IMG0)
    workers = cfg.DATALOADER.NUM_WORKERS
    sampler = None
    shuffle = is_train if shuffle is None else shuffle
    if is_distributed():
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(dataset, shuffle=shuffle, drop_last=False)
        shuffle = False
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler, num_workers=workers,
        drop_last=False, pin_memory=cfg.DATALOADER.PIN_MEMORY and torch.cuda.is_available() and cfg.USE_CUDA,
        persistent_workers=bool(cfg.DATALOADER.PERSISTENT_WORKERS and workers > 0),
    )


class DataManager:
    def __init__(self, cfg, custom_tfm_train=None, custom_tfm_test=None, dataset=None):
        self.cfg = cfg
        self.dataset = dataset if dataset is not None else build_dataset(cfg)
        self.tfm_train = custom_tfm_train or build_transform(cfg, is_train=True)
        self.tfm_test = custom_tfm_test or build_transform(cfg, is_train=False)
        ds = self.dataset
        self.train_loader_x = build_data_loader(cfg, ds.train_x, cfg.DATALOADER.TRAIN_X.BATCH_SIZE,
                                                self.tfm_train, True) if ds.train_x else None
        self.train_loader_u = None
        self.val_loader = build_data_loader(cfg, ds.val, cfg.DATALOADER.TEST.BATCH_SIZE, self.tfm_test,
                                            False) if ds.val else None
        self.test_loader = build_data_loader(cfg, ds.test, cfg.DATALOADER.TEST.BATCH_SIZE, self.tfm_test,
                                             False) if ds.test else None
        self.num_classes = ds.num_classes
        self.lab2cname = ds.lab2cname
        self.classnames = ds.classnames
        self.num_source_domains = max(len(cfg.DATASET.SOURCE_DOMAINS), 1)
