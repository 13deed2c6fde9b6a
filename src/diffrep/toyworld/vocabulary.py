"""The toy world's words: its kinds, colours and views, in a module without torch, so that a prompt can be
checked against them before anything heavy is imported (tests check they equal the renderer's own)."""

KINDS: tuple[str, ...] = (
    "mug", "duck", "chair", "house", "car", "teapot", "robot", "ball", "donut", "bottle", "tree", "table",
)
COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange")
VIEWS: tuple[str, ...] = ("front", "side", "back", "overhead")
