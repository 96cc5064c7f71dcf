"""TaI-DPT's probability map ``p = sigmoid(a * m + b)`` of the merged cosine ``m``: the configured one
(:class:`~trainers.probmap.ProbabilityMap`), or with ``PROB_FIT val`` the one fitted by BCE on the
validation split after training, saved as ``prob_map.json`` beside the checkpoints and read back by
``--eval-only --model-dir`` runs."""
import json
import os

import torch
import torch.nn.functional as F

from ...calibration.fileio import atomic_write_json
from ...engine.trainer import get_rank
from ..probmap import ProbabilityMap
from ..task import as_targets

PROB_MAP_FILE = "prob_map.json"


class FittedProbabilityMap(ProbabilityMap):
    input_name = "merged_cosine"
    fitted = fitted_source = None

    def scale_bias(self):
        """``(a, b)``; the fitted one once PROB_FIT val has run."""
        return self.fitted if self.fitted is not None else super().scale_bias()

    def source(self):
        return self.fitted_source if self.fitted is not None else super().source()

    @torch.no_grad()
    def _merged_cosines(self, loader):
        t = self.trainer
        t.set_model_mode("eval")
        ms, ys = [], []
        with t.text_head.evaluation():
            for batch in loader:
                imgs, labels = t.parse_batch_test(batch)
                with t.clip.autocast():
                    ms.append(t.forward_logits(imgs)["merged"].float().cpu())
                ys.append(as_targets(labels, t.num_classes).cpu())
        return torch.cat(ms), torch.cat(ys)

    def fit(self):
        """Fit ``(a, b)`` by BCE on the validation split (known entries); written to ``prob_map.json``."""
        t = self.trainer
        m, y = self._merged_cosines(t.val_loader)
        known = y >= 0
        x, target = m.double()[known], (y[known] == 1).double()
        if target.numel() == 0 or target.min() == target.max():
            raise ValueError("PROB_FIT val: the validation split needs positive and negative entries")
        mu, sd = float(x.mean()), float(x.std().clamp_min(1e-6))
        params = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)  # on standardised m
        opt = torch.optim.LBFGS([params], lr=1.0, max_iter=200, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-10, tolerance_change=1e-12)
        z = (x - mu) / sd

        def closure():
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(params[0] * z + params[1], target)
            loss.backward()
            return loss

        opt.step(closure)  # LBFGS runs the closure with gradients on (evaluation runs under no_grad)
        a = float(params[0]) / sd
        b = float(params[1]) - a * mu
        nll = float(F.binary_cross_entropy_with_logits(a * x + b, target))
        self.fitted = (a, b)
        self.fitted_source = (f"fitted on the validation split ({x.numel():,} image-class pairs, "
                              f"{int(known.any(1).sum()):,} images, BCE {nll:.4f})")
        t.logger.info(f"Probability map p = sigmoid({a:.4f} * m + {b:.4f}): {self.fitted_source}")
        if get_rank() == 0 and t.output_dir:
            info = dict(self.info(), split="val", n_pairs=int(x.numel()), bce=nll)
            atomic_write_json(info, os.path.join(t.output_dir, PROB_MAP_FILE), indent=1)
        return a, b

    def load(self, directory):
        """Read a fitted map from ``directory/prob_map.json`` when there is one."""
        path = os.path.join(directory, PROB_MAP_FILE)
        if os.path.isfile(path):
            with open(path) as f:
                info = json.load(f)
            self.fitted = (float(info["scale"]), float(info["bias"]))
            self.fitted_source = f"{info.get('source', 'fitted')} (read from {path})"
            self.trainer.logger.info(f"Probability map p = sigmoid({self.fitted[0]:.4f} * m + "
                                     f"{self.fitted[1]:.4f}) from {path}")
