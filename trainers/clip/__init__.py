"""The CLIP backbone adapter on open_clip (docs/design.md section 3), one module per job:

* :mod:`.loading`: resolving names, tags and files offline and building the frozen backbone
  (:func:`load_clip`);
* :mod:`.backbone`: :class:`ClipBackbone`, the shared text path with deep prompts, the short
  text path and image encoding (prompted ViT, dense ResNet features);
* :mod:`.prompts`: :class:`PromptLearner` (learnable context in the token embeddings) and
  :func:`encode_prompts`.
"""
from cpt.trainers.clip.backbone import PRECISIONS, BackboneError, ClipBackbone, effective_precision  # noqa: F401
from cpt.trainers.clip.loading import (DASSL_TO_OPEN_CLIP, WORLD_NAMES, PretrainedWeightsNotFound,  # noqa: F401
                                       bpe_tokenizer, find_pretrained_file, hf_cache_dir, load_clip,
                                       resolve_arch, url_cache_dir)
from cpt.trainers.clip.prompts import PromptLearner, encode_prompts  # noqa: F401
