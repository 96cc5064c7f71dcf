"""The image side of the CLIP adapter: a ViT run with visual prompts (MaPLe's deep prompts) and the
dense features of a ModifiedResNet's attention pool (TaI-DPT's local features); the residual-block
helpers shared with the text path (docs/design.md section 3)."""
import torch
import torch.nn.functional as F


def run_block(block, x, attn_mask, batch_first):
    """One residual block on NLD input (transposes for sequence-first blocks)."""
    if batch_first:
        return block(x, attn_mask=attn_mask)
    return block(x.transpose(0, 1), attn_mask=attn_mask).transpose(0, 1)


def replace_tokens(x, prompt, start, stop):
    """``x[:, start:stop] = prompt`` (out of place); prompt ``(n, D)`` or ``(N, n, D)``."""
    if prompt.dim() == 2:
        prompt = prompt.unsqueeze(0).expand(x.shape[0], -1, -1)
    return torch.cat([x[:, :start], prompt.to(x.dtype), x[:, stop:]], dim=1)


def vit_forward(v, images, visual_prompts=None, deep_visual_prompts=None, return_tokens=False):
    """ViT image tower ``v`` with ``visual_prompts`` appended after the patch tokens and
    ``deep_visual_prompts`` replacing them per layer (``ClipBackbone.encode_image``)."""
    x = v.conv1(images.to(v.conv1.weight.dtype))
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = v.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
    n_prompt = 0
    if visual_prompts is not None:
        n_prompt = visual_prompts.shape[-2]
        x = replace_tokens(x, visual_prompts, x.shape[1], x.shape[1])  # appended after the patches
    x = v.ln_pre(x)
    deep = list(deep_visual_prompts or [])
    if deep and n_prompt == 0:
        raise ValueError("deep visual prompts need visual_prompts (the tokens they replace)")
    n_layers = len(v.transformer.resblocks)
    if len(deep) >= n_layers:
        raise ValueError(f"{len(deep)} deep visual prompts for a {n_layers}-layer image tower")
    batch_first = getattr(v.transformer, "batch_first", False)
    n_tok = x.shape[1]
    for i, block in enumerate(v.transformer.resblocks):
        if 1 <= i <= len(deep):
            x = replace_tokens(x, deep[i - 1], n_tok - n_prompt, n_tok)
        x = run_block(block, x, None, batch_first)
    if n_prompt:
        x = x[:, :-n_prompt]
    pooled, tokens = v._pool(x)
    if v.proj is not None:
        pooled, tokens = pooled @ v.proj, tokens @ v.proj
    return (pooled.float(), tokens.float()) if return_tokens else pooled.float()


def attnpool_side(v):
    """Side of the square feature grid a ModifiedResNet ``v``'s attention pool was trained on (its
    positional embedding)."""
    return int(round((v.attnpool.positional_embedding.shape[0] - 1) ** 0.5))


def resnet_dense(v, images, positional=True):
    """``(global (B, E), dense (B, H*W, E))`` of a ModifiedResNet ``v`` (float32, not normalised;
    ``images`` in the tower's dtype).

    Global: the attention pool's output. Dense at location ``k``: the pool's value path alone,
    ``c_proj(v_proj(x_k + pos_k))``, whose attention-weighted mean is the pooled output, so
    both live in one embedding space (TaI-DPT's RN50 local features, as MaskCLIP's). A grid
    other than the pool's own resizes the positional embedding (bicubic); ``positional=False``
    adds none (upstream TaI-DPT's evaluation).
    """
    pool = v.attnpool
    x = v.stem(images)
    x = v.layer4(v.layer3(v.layer2(v.layer1(x))))
    b, c, h, w = x.shape
    x = x.reshape(b, c, h * w).permute(2, 0, 1)  # (HW, B, C)
    x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)  # (HW + 1, B, C)
    pos = pool.positional_embedding.to(x.dtype)
    if not positional:
        pos = torch.zeros_like(x[:, 0])
    elif pos.shape[0] != h * w + 1:
        side = attnpool_side(v)
        grid = pos[1:].reshape(1, side, side, c).permute(0, 3, 1, 2).float()
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        pos = torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(h * w, c).to(x.dtype)], dim=0)
    x = x + pos[:, None, :]
    pooled, _ = F.multi_head_attention_forward(
        query=x[:1], key=x, value=x, embed_dim_to_check=c, num_heads=pool.num_heads,
        q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight,
        v_proj_weight=pool.v_proj.weight, in_proj_weight=None,
        in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
        out_proj_weight=pool.c_proj.weight, out_proj_bias=pool.c_proj.bias,
        use_separate_proj_weight=True, training=False, need_weights=False)
    dense = pool.c_proj(pool.v_proj(x[1:]))  # (HW, B, E)
    return pooled[0].float(), dense.permute(1, 0, 2).float()

