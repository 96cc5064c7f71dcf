"""Small CLIP files for tests: randomly initialised open_clip models saved in the project's
``{"model_cfg", "state_dict"}`` format (no download)."""
import torch

RN_CFG = {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8},
          "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}


def rn_clip_file(tmp_path, seed=5):
    """A randomly initialised ModifiedResNet CLIP (RN50 layout, 2x2 grid at 64 px) saved as a
    ``{"model_cfg", "state_dict"}`` file; returns its path."""
    import open_clip
    torch.manual_seed(seed)
    model = open_clip.model.CLIP(**RN_CFG)
    path = str(tmp_path / "rn_tiny.pt")
    torch.save({"model_cfg": RN_CFG, "state_dict": model.state_dict()}, path)
    return path
