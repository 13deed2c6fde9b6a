"""A procedural 3-D toy world: SDF objects on a turntable, rendered from labelled views.

Example::

    from diffrep import toyworld
    ds = toyworld.generate(toyworld.ToyWorldConfig(n=100, res=32, seed=0))
    ds.images.shape            # (100, 3, 32, 32), in [-1, 1]
    ds.captions[0]             # e.g. "a red mug, back view"
    toyworld.write_dataset(ds, "out/toyworld")

See docs/toyworld.md for the kinds, cameras, shading and labels.
"""

from diffrep.lazy import lazy_exports

__all__ = [
    "BACKGROUND",
    "COLOURS",
    "DISTANCE",
    "FOV_DEG",
    "FRONTED",
    "KINDS",
    "KIND_SPECS",
    "N_PARAMS",
    "VIEWS",
    "ToyDataset",
    "ToyWorldConfig",
    "camera_rays",
    "caption",
    "generate",
    "occupancy",
    "parse_caption",
    "read_dataset",
    "render",
    "sample_scenes",
    "view_label",
    "write_dataset",
]

# The renderer and the data set import torch: they load on first use. A prompt is checked against
# toyworld/vocabulary.py, the same words without torch (tests/test_toyworld.py keeps them equal).
__getattr__ = lazy_exports(__name__, {
    "diffrep.toyworld.cameras": ("DISTANCE", "FOV_DEG", "VIEWS", "camera_rays", "view_label", "cameras"),
    "diffrep.toyworld.dataset": ("ToyDataset", "ToyWorldConfig", "caption", "generate", "parse_caption", "read_dataset",
                                 "sample_scenes", "write_dataset", "dataset"),
    "diffrep.toyworld.objects": ("COLOURS", "FRONTED", "KIND_SPECS", "KINDS", "N_PARAMS", "occupancy", "objects"),
    "diffrep.toyworld.renderer": ("BACKGROUND", "render", "renderer"),
})
