"""The CLIP backbone adapter on open_clip (docs/design.md section 3): :mod:`.loading` resolves and
loads weights offline (:func:`load_clip`), :mod:`.backbone` is the frozen :class:`ClipBackbone`
(text path with deep prompts, image encoding; the image side in :mod:`.image`), :mod:`.prompts` the
:class:`PromptLearner`."""
from .backbone import PRECISIONS, BackboneError, ClipBackbone, effective_precision
from .loading import (
    DASSL_TO_OPEN_CLIP,
    WORLD_NAMES,
    PretrainedWeightsNotFound,
    bpe_tokenizer,
    find_pretrained_file,
    hf_cache_dir,
    load_clip,
    resolve_arch,
    url_cache_dir,
)
from .prompts import PromptLearner, encode_prompts
