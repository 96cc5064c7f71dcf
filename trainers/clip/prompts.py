"""Learnable context (CoOp-style prompt assembly), shared by every prompt learner, and the
encoding of prompt embeddings of any leading shape."""
import torch
import torch.nn as nn

from .backbone import BackboneError


class PromptLearner(nn.Module):
    """Learnable context spliced into the token embeddings of ``"<ctx> <classname>."``.

    ``n_ctx``: number of learnable tokens; ``None`` with ``ctx_init`` means the token count of
    ``ctx_init`` (CoOp). With ``ctx_init`` the first ``n_ctx`` tokens of ``ctx_init`` initialise
    the context and the rest of ``ctx_init`` stays fixed text after it (MaPLe: 2 of
    "a photo of a"); without, the context is drawn from N(0, ``init_std``^2) and the placeholder
    text is ``"X X ... X"``. ``csc``: one context per class. ``class_token_position``: ``end``
    (``[SOS][ctx][name].[EOT]``), ``middle`` (``[SOS][ctx[:n/2]][name][ctx[n/2:]].[EOT]``) or
    ``front`` (``[SOS][name][ctx].[EOT]``). ``cfg_key`` names the config node in error messages.

    ``forward(ctx_shift=None)`` returns the prompt embeddings ``(C, L, D)``; ``ctx_shift``
    ``(B, D)`` (CoCoOp's image-conditioned bias) gives ``(B, C, L, D)``. ``tokenized_prompts``
    ``(C, L)`` holds the matching token ids. Parameters are float32; embeddings are cast to the
    backbone dtype.
    """

    def __init__(self, clip, classnames, n_ctx=16, ctx_init="", csc=False, class_token_position="end",
                 init_std=0.02, cfg_key="TRAINER"):
        super().__init__()
        if class_token_position not in ("end", "middle", "front"):
            raise ValueError(f"{cfg_key}.CLASS_TOKEN_POSITION must be end, middle or front, "
                             f"got {class_token_position!r}")
        classnames = [c.replace("_", " ") for c in classnames]
        self.n_cls = len(classnames)
        self.classnames = classnames
        self.csc = bool(csc)
        self.class_token_position = class_token_position
        self.cfg_key = cfg_key
        d = clip.text_width
        ctx_init = (ctx_init or "").replace("_", " ").strip()
        if ctx_init:
            n_init = clip.count_tokens(ctx_init)
            if n_init is None:
                raise BackboneError("CTX_INIT needs a tokenizer that can count tokens (CLIP BPE)")
            if n_init + 2 > clip.context_length:
                raise ValueError(
                    f"{cfg_key}.CTX_INIT {ctx_init!r} has {n_init} tokens, longer than the text context "
                    f"length {clip.context_length} of backbone {clip.name!r} allows (with start/end tokens)")
            n_ctx = n_init if n_ctx is None else int(n_ctx)
            if not 1 <= n_ctx <= n_init:
                raise ValueError(f"{cfg_key}.N_CTX={n_ctx} must be between 1 and the {n_init} tokens of "
                                 f"{cfg_key}.CTX_INIT {ctx_init!r}")
            if n_ctx < n_init and class_token_position != "end":
                raise ValueError(f"{cfg_key}.CLASS_TOKEN_POSITION {class_token_position!r} needs N_CTX equal "
                                 f"to the token count of CTX_INIT ({n_init})")
            ids = clip.tokenize(ctx_init, what=f"{cfg_key}.CTX_INIT")
            ctx = clip.embed_tokens(ids)[0, 1:1 + n_ctx].float().clone()
            if self.csc:
                ctx = ctx.unsqueeze(0).repeat(self.n_cls, 1, 1)
            prefix_text = ctx_init
        else:
            n_ctx = 16 if n_ctx is None else int(n_ctx)
            if n_ctx < 1:
                raise ValueError(f"{cfg_key}.N_CTX must be >= 1, got {n_ctx}")
            shape = (self.n_cls, n_ctx, d) if self.csc else (n_ctx, d)
            ctx = torch.empty(shape)
            nn.init.normal_(ctx, std=init_std)
            prefix_text = " ".join(["X"] * n_ctx)
        self.n_ctx = n_ctx
        self.ctx_init = ctx_init
        self.prefix_text = prefix_text
        self.ctx = nn.Parameter(ctx.to(clip.device))

        prompts = [f"{prefix_text} {name}." for name in classnames]
        tokenized = clip.tokenize(prompts, what=f"prompt (with {cfg_key}.CTX_INIT / N_CTX)")
        emb = clip.embed_tokens(tokenized)
        self.name_lens = [clip.count_tokens(n) or 0 for n in classnames]
        self.register_buffer("tokenized_prompts", tokenized, persistent=False)
        self.register_buffer("token_prefix", emb[:, :1].clone(), persistent=False)
        self.register_buffer("token_suffix", emb[:, 1 + n_ctx:].clone(), persistent=False)
        layout = None  # per-class gather index from the ``end`` layout to the configured one
        if class_token_position != "end":
            rows, half = [], n_ctx // 2
            for nl in self.name_lens:
                ctx = list(range(1, 1 + n_ctx))
                name = list(range(1 + n_ctx, 1 + n_ctx + nl))
                rest = list(range(1 + n_ctx + nl, tokenized.shape[1]))
                rows.append([0] + (ctx[:half] + name + ctx[half:] if class_token_position == "middle"
                                   else name + ctx) + rest)
            layout = torch.tensor(rows, dtype=torch.long).to(clip.device)
        self.register_buffer("layout", layout, persistent=False)

    def token_layout(self):
        """Token ids ``(C, L)`` in the configured layout (context tokens from the placeholder text)."""
        return self.tokenized_prompts if self.layout is None else self.tokenized_prompts.gather(1, self.layout)

    def context(self, ctx_shift=None):
        """Context ``(n, D)`` (CSC: ``(C, n, D)``); with ``ctx_shift`` ``(B, D)``: ``(B, n, D)``
        (CSC: ``(B, C, n, D)``)."""
        ctx = self.ctx
        if ctx_shift is not None:
            shift = ctx_shift.to(ctx.dtype)
            ctx = ctx.unsqueeze(0) + (shift[:, None, :] if not self.csc else shift[:, None, None, :])
        return ctx

    def assemble(self, ctx):
        """Prompt embeddings from context ``ctx`` (shapes as returned by :meth:`context`)."""
        dtype = self.token_prefix.dtype
        generic = ctx.dim() == 2 or (ctx.dim() == 3 and not self.csc)
        lead = ctx.shape[:-2] if generic else ctx.shape[:-3]
        c, dim = self.n_cls, ctx.shape[-1]
        if generic:
            ctx = ctx.unsqueeze(-3).expand(*lead, c, self.n_ctx, dim)
        prefix = self.token_prefix.expand(*lead, *self.token_prefix.shape)
        suffix = self.token_suffix.expand(*lead, *self.token_suffix.shape)
        x = torch.cat([prefix, ctx.to(dtype), suffix], dim=-2)
        if self.layout is None:
            return x
        idx = self.layout.view(*([1] * (x.dim() - 3)), *self.layout.shape, 1)
        return x.gather(-2, idx.expand(*x.shape[:-3], *self.layout.shape, x.shape[-1]))

    def forward(self, ctx_shift=None):
        return self.assemble(self.context(ctx_shift))

    def prompts_for_names(self, clip, names):
        """(embeddings ``(K, L, D)``, token ids) of ``"<ctx> <name>."`` for arbitrary ``names`` (DOR's
        outlier words, DAC's base classes): generic context and ``end`` layout only."""
        if self.csc:
            raise ValueError(f"{self.cfg_key}.CSC True: class-specific context has no prompt for other words")
        if self.class_token_position != "end":
            raise ValueError(f"{self.cfg_key}.CLASS_TOKEN_POSITION must be end to prompt other words")
        names = [n.replace("_", " ") for n in names]
        ids = clip.tokenize([f"{self.prefix_text} {n}." for n in names], what="prompt")
        emb = clip.embed_tokens(ids)
        k = emb.shape[0]
        ctx = self.ctx.to(emb.dtype).unsqueeze(0).expand(k, -1, -1)
        x = torch.cat([emb[:, :1], ctx, emb[:, 1 + self.n_ctx:]], dim=1)
        return x, ids


def encode_prompts(clip, embeds, token_ids, deep_prompts=None, max_rows=None):
    """Encode prompt embeddings ``(..., C, L, D)`` -> ``(..., C, E)``, ``token_ids`` ``(C, L)``
    broadcast over the leading dims, in chunks of at most ``max_rows`` sequences (CoCoOp's
    per-image prompts); the short text path cuts the prompts before they are flattened."""
    min_length = 1 + deep_prompts[0].shape[-2] if deep_prompts else 0
    keep = clip.text_keep_length(token_ids, min_length)
    embeds, token_ids = embeds[..., :keep, :], token_ids[..., :keep]
    lead = embeds.shape[:-2]
    flat = embeds.reshape(-1, *embeds.shape[-2:])
    ids = token_ids.expand(*lead, token_ids.shape[-1]).reshape(-1, token_ids.shape[-1])
    if max_rows is None or flat.shape[0] <= max_rows:
        out = clip.encode_text_embeddings(flat, ids, deep_prompts=deep_prompts)
    else:
        out = torch.cat([clip.encode_text_embeddings(flat[i:i + max_rows], ids[i:i + max_rows],
                                                     deep_prompts=deep_prompts)
                         for i in range(0, flat.shape[0], max_rows)])
    return out.reshape(*lead, out.shape[-1])
