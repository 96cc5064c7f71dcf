"""Image transforms named as in Dassl's ``INPUT.TRANSFORMS`` (train: the ``AVAILABLE`` names; test:
resize of the shorter side + center crop to ``INPUT.SIZE`` + normalize if listed).
"""
import torch
import torchvision.transforms as T
from torchvision.transforms import InterpolationMode

_INTERP = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC,
           "nearest": InterpolationMode.NEAREST}
AVAILABLE = {"random_resized_crop", "random_crop", "random_flip", "center_crop", "colorjitter",
             "gaussian_noise", "normalize", "random_translation"}


class GaussianNoise:
    def __init__(self, mean=0.0, std=0.15):
        self.mean, self.std = mean, std

    def __call__(self, img):
        return img + torch.randn_like(img) * self.std + self.mean


def build_transform(cfg, is_train=True, choices=None):
    choices = list(choices if choices is not None else cfg.INPUT.TRANSFORMS)
    unknown = [c for c in choices if c not in AVAILABLE]
    if unknown:
        raise ValueError(f"INPUT.TRANSFORMS: unknown transform(s) {unknown}; available: {sorted(AVAILABLE)}")
    size = tuple(cfg.INPUT.SIZE)
    interp = _INTERP[cfg.INPUT.INTERPOLATION]
    tfm = []
    if is_train and not cfg.INPUT.NO_TRANSFORM:
        if "random_resized_crop" in choices:
            tfm.append(T.RandomResizedCrop(size, scale=tuple(cfg.INPUT.RRCROP_SCALE), interpolation=interp))
        elif "random_crop" in choices or "random_translation" in choices:
            tfm += [T.Resize(size, interpolation=interp), T.RandomCrop(size, padding=cfg.INPUT.CROP_PADDING)]
        else:
            tfm += [T.Resize(max(size), interpolation=interp), T.CenterCrop(size)]
        if "random_flip" in choices:
            tfm.append(T.RandomHorizontalFlip())
        if "colorjitter" in choices:
            tfm.append(T.ColorJitter(cfg.INPUT.COLORJITTER_B, cfg.INPUT.COLORJITTER_C,
                                     cfg.INPUT.COLORJITTER_S, cfg.INPUT.COLORJITTER_H))
        tfm.append(T.ToTensor())
        if "gaussian_noise" in choices:
            tfm.append(GaussianNoise(cfg.INPUT.GN_MEAN, cfg.INPUT.GN_STD))
    else:
        tfm += [T.Resize(max(size), interpolation=interp), T.CenterCrop(size), T.ToTensor()]
    if "normalize" in choices:
        tfm.append(T.Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD))
    return T.Compose(tfm)
