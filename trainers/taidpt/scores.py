"""TaI-DPT's learner and scores: the second (local) context, softmax pooling over tokens and the
pairwise ranking loss (formulas: the package docstring)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..clip import PromptLearner


def ranking_loss(scores, targets, margin=1.0):
    """Pairwise ranking loss ``mean_i sum_{p in P_i, n in N_i} max(0, margin - s_ip + s_in)`` of
    ``scores`` ``(B, C)``, ``P_i`` / ``N_i`` the entries 1 / 0 of ``targets`` row i (-1 in neither)."""
    targets = targets.to(scores.device)
    pos = (targets == 1).to(scores.dtype)
    neg = (targets == 0).to(scores.dtype)
    hinge = F.relu(margin - scores[:, :, None] + scores[:, None, :])  # [i, p, n]
    return (hinge * pos[:, :, None] * neg[:, None, :]).sum(dim=(1, 2)).mean()


def softmax_pool(cos_tok, temperature, mask=None):
    """Softmax pooling over tokens: ``sum_k softmax_k(T * cos_k) cos_k``.

    ``cos_tok`` ``(B, K, C)``; ``mask`` ``(B, K)`` bool of the tokens that count. Returns ``(B, C)``.
    """
    logits = temperature * cos_tok
    if mask is not None:
        logits = logits.masked_fill(~mask[:, :, None], float("-inf"))
    w = torch.softmax(logits, dim=1)
    return (w * cos_tok).sum(dim=1)


class DualPromptLearner(PromptLearner):
    """:class:`PromptLearner` with a second (local) context ``ctx_local`` of the same shape
    (:meth:`local_prompts`); drawn independently from N(0, 0.02^2), or ``ctx_init``'s embeddings."""

    def __init__(self, clip, classnames, **kw):
        super().__init__(clip, classnames, **kw)
        local = self.ctx.detach().clone()
        if not self.ctx_init:
            nn.init.normal_(local, std=0.02)
        self.ctx_local = nn.Parameter(local)

    def local_prompts(self):
        return self.assemble(self.ctx_local)
