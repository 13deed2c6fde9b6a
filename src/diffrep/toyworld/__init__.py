"""A procedural 3-D toy world: SDF objects on a turntable, rendered from labelled views.

Example::

    from diffrep import toyworld
    ds = toyworld.generate(toyworld.ToyWorldConfig(n=100, res=32, seed=0))
    ds.images.shape            # (100, 3, 32, 32), in [-1, 1]
    ds.captions[0]             # e.g. "a red mug, back view"
    toyworld.write_dataset(ds, "out/toyworld")

    scenes = toyworld.generate_scenes(toyworld.SceneConfig(n=4))  # 360-degree rooms
    scenes.panoramas.shape     # (4, 3, 32, 192); views are 32-column crops

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
    "MAX_OBJECTS",
    "N_PARAMS",
    "VIEWS",
    "SceneConfig",
    "SceneQuery",
    "SceneSet",
    "ToyDataset",
    "ToyWorldConfig",
    "camera_rays",
    "caption",
    "generate",
    "generate_scenes",
    "occupancy",
    "parse_caption",
    "parse_scene_prompt",
    "read_dataset",
    "render",
    "sample_scenes",
    "scene_caption",
    "view_label",
    "write_dataset",
    "write_scenes",
]

# The renderer and the data set import torch: they load on first use. A prompt is checked against
# toyworld/vocabulary.py, the same words without torch (tests/test_toyworld.py keeps them equal).
__getattr__ = lazy_exports(__name__, {
    "diffrep.toyworld.cameras": ("DISTANCE", "FOV_DEG", "VIEWS", "camera_rays", "view_label", "cameras"),
    "diffrep.toyworld.dataset": ("ToyDataset", "ToyWorldConfig", "caption", "generate", "parse_caption", "read_dataset",
                                 "sample_scenes",
    "scene_caption", "write_dataset", "dataset"),
    "diffrep.toyworld.objects": ("COLOURS", "FRONTED", "KIND_SPECS", "KINDS", "N_PARAMS", "occupancy", "objects"),
    "diffrep.toyworld.renderer": ("BACKGROUND", "render", "renderer"),
    "diffrep.toyworld.scene_text": ("MAX_OBJECTS", "SceneConfig", "SceneQuery", "parse_scene_prompt", "scene_caption",
                                    "scene_text"),
    "diffrep.toyworld.scenes": ("SceneSet", "generate_scenes", "write_scenes", "scenes"),
})
