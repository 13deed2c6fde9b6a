"""Camera maths against slow, explicit twins; view labels, suffixes and camera sets."""

import ast
import math
from pathlib import Path

import pytest
import torch

from diffrep import cameras as C
from diffrep import toyworld
from diffrep.toyworld import cameras as toy_cameras


def _cameras(n: int = 64, seed: int = 0) -> torch.Tensor:
    """Random cameras, the poles included."""
    g = torch.Generator().manual_seed(seed)
    cams = C.sample_cameras(torch.rand(n, 2, generator=g, dtype=torch.float64), (-90.0, 90.0), 1.0)
    cams[:, 2] = 0.5 + 3.0 * torch.rand(n, generator=g)
    cams[:2, 1] = torch.tensor([90.0, -90.0])
    return cams


def test_public_names_and_toyworld_reexports():
    for name in C.__all__:
        assert getattr(C, name) is not None, name
    for name in toy_cameras.__all__:
        assert getattr(toy_cameras, name) is not None, name
    for name in ("VIEWS", "OVERHEAD_DEG", "camera_frames", "pixel_offsets", "rays_from_frames", "relative_azimuth",
                 "sample_cameras", "view_label"):
        assert getattr(toy_cameras, name) is getattr(C, name), name
    assert toyworld.VIEWS is C.VIEWS and toyworld.view_label is C.view_label


def test_generic_module_does_not_import_the_toy_world():
    tree = ast.parse(Path(C.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert names and not [m for m in names if "toyworld" in m or m.startswith("diffrep")], names


def test_frames_are_orthonormal_right_handed_and_look_at_the_origin():
    cams = _cameras()
    eye, right, up, forward = (f.double() for f in C.camera_frames(cams))
    basis = torch.stack([right, up, forward], 1)  # [N, 3, 3], rows
    torch.testing.assert_close(basis @ basis.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand_as(basis), atol=1e-6, rtol=0)
    # right x up = back: (right, up, back) is a right-handed frame, as OpenGL's camera (x, y, z).
    torch.testing.assert_close(torch.linalg.cross(right, up), -forward, atol=1e-6, rtol=0)
    torch.testing.assert_close(eye.norm(dim=-1), cams[:, 2].double(), atol=1e-5, rtol=0)
    torch.testing.assert_close(forward, -eye / eye.norm(dim=-1, keepdim=True), atol=1e-6, rtol=0)
    # Image up is world up wherever that is defined, and right is horizontal.
    assert (up[:, 2] >= -1e-7).all() and right[:, 2].abs().max() < 1e-7
    # The position formula of the docs.
    a, e = cams[:, 0].double().deg2rad(), cams[:, 1].double().deg2rad()
    position = torch.stack([e.cos() * a.cos(), e.cos() * a.sin(), e.sin()], -1) * cams[:, 2:].double()
    torch.testing.assert_close(eye, position, atol=1e-5, rtol=0)


def _slow_camera_rays(cam: torch.Tensor, res: int, fov_deg: float) -> torch.Tensor:
    """Float64 twin of ``camera_rays``' directions: a look-at frame and one pixel at a time."""
    a, e, r = (math.radians(cam[0]), math.radians(cam[1]), float(cam[2]))
    eye = r * torch.tensor([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)], dtype=torch.float64)
    forward = -eye / eye.norm()
    right = torch.tensor([-math.sin(a), math.cos(a), 0.0], dtype=torch.float64)  # forward x z, normalised
    up = torch.linalg.cross(right, forward)
    tan = math.tan(math.radians(fov_deg) / 2)
    d = torch.empty(res, res, 3, dtype=torch.float64)
    for i in range(res):  # row from the top
        for j in range(res):  # column from the left
            v = forward + (2 * (j + 0.5) / res - 1) * tan * right + (1 - 2 * (i + 0.5) / res) * tan * up
            d[i, j] = v / v.norm()
    return d


@pytest.mark.parametrize(("res", "fov_deg"), [(5, 34.0), (8, 60.0)])
def test_camera_rays_match_slow_twin(res, fov_deg):
    cams = _cameras(6, seed=1)
    o, d = C.camera_rays(cams, res, fov_deg)
    assert o.shape == d.shape == (6, res, res, 3)
    for n in range(6):
        torch.testing.assert_close(d[n].double(), _slow_camera_rays(cams[n].tolist(), res, fov_deg), atol=1e-6, rtol=0)
        torch.testing.assert_close(o[n], C.camera_frames(cams[n : n + 1])[0].expand(res, res, 3))


def test_ray_through_the_image_centre_hits_the_origin():
    cams = _cameras(16, seed=2)
    o, d = C.camera_rays(cams, 7, 40.0)
    centre = o[:, 3, 3] + cams[:, 2:] * d[:, 3, 3]
    torch.testing.assert_close(centre, torch.zeros_like(centre), atol=1e-5, rtol=0)
    # The image-plane origin of any resolution is the forward direction.
    frames = [f[:, None, :] for f in C.camera_frames(cams)]
    d0 = C.rays_from_frames(frames, torch.zeros(1, 1), torch.zeros(1, 1))[1][:, 0]
    torch.testing.assert_close(d0, -o[:, 0, 0] / cams[:, 2:], atol=1e-6, rtol=0)


def test_toyworld_camera_rays_are_the_generic_ones_at_its_field_of_view():
    cams = _cameras(4, seed=3)
    for got, want in zip(toyworld.camera_rays(cams, 8), C.camera_rays(cams, 8, toyworld.FOV_DEG)):
        assert torch.equal(got, want)


def test_camera_rays_reject_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        C.camera_rays(torch.zeros(3), 4, 30.0)
    with pytest.raises(ValueError, match="res"):
        C.camera_rays(torch.zeros(1, 3), 0, 30.0)
    with pytest.raises(ValueError, match="fov_deg"):
        C.camera_rays(torch.zeros(1, 3), 4, 180.0)


def _label(azimuth: float, elevation: float, **thresholds: float) -> str:
    return C.VIEWS[int(C.view_label(torch.tensor([azimuth]), torch.tensor([elevation]), **thresholds)[0])]


@pytest.mark.parametrize(
    ("azimuth", "elevation", "view"),
    [(45.0, 0.0, "side"), (44.99, 0.0, "front"), (-45.0, 0.0, "side"), (315.01, 0.0, "front"), (135.0, 0.0, "side"),
     (135.01, 0.0, "back"), (-135.01, 0.0, "back"), (180.0, 45.0, "back"), (180.0, 45.01, "overhead"),
     (0.0, 90.0, "overhead"), (0.0, -90.0, "front"), (540.0, 0.0, "back"), (-720.0, 0.0, "front")],
)
def test_view_labels_at_the_default_thresholds(azimuth, elevation, view):
    assert _label(azimuth, elevation) == view


def test_view_label_thresholds_are_parameters():
    # threestudio's defaults: front and back 45 degrees wide each side, overhead above 60.
    assert _label(0.0, 50.0, overhead_deg=60.0) == "front" and _label(0.0, 60.01, overhead_deg=60.0) == "overhead"
    assert _label(60.0, 0.0, front_deg=70.0) == "front" and _label(100.0, 0.0, back_deg=90.0) == "back"
    with pytest.raises(ValueError, match="front_deg"):
        C.view_label(torch.zeros(1), torch.zeros(1), front_deg=150.0)


def test_view_suffixes_and_prompts():
    assert [C.view_suffix(a, e) for a, e in ((0, 0), (90, 10), (180, 10), (270, -10), (200, 70))] == [
        ", front view", ", side view", ", back view", ", side view", ", overhead view"]
    assert C.view_suffix(0.0, 50.0, overhead_deg=60.0) == ", front view"
    assert C.view_prompt("a red mug", "back") == "a red mug, back view" == C.view_prompt("a red mug", 2)
    from diffrep.priors.prompts import view_text  # the torch-free twin the prompt checks use

    assert [view_text("a red mug", v) for v in C.VIEWS] == [C.view_prompt("a red mug", v) for v in C.VIEWS]
    with pytest.raises(ValueError, match="view must be one of"):
        C.view_prompt("a red mug", "top")
    with pytest.raises(ValueError, match="view must be one of"):
        C.view_prompt("a red mug", 4)


def test_suffix_matches_the_toy_world_captions():
    ds = toyworld.generate(toyworld.ToyWorldConfig(n=24, seed=5))
    for text, (az, el, _), v in zip(ds.captions, ds.cameras.tolist(), ds.view.tolist()):
        prompt = text.removesuffix(C.view_suffix(az, el))
        assert prompt != text and C.view_prompt(prompt, v) == text


def test_stratified_cameras_cover_every_azimuth_bin_with_a_uniform_phase():
    g = torch.Generator().manual_seed(0)
    k, draws = 6, 2000
    phases = []
    for _ in range(draws):
        cams = C.stratified_cameras(k, g, (-10.0, 60.0), 2.5)
        assert cams.shape == (k, 3) and cams.dtype == torch.float32
        az = cams[:, 0].double()
        assert torch.equal((az / (360.0 / k)).floor(), torch.arange(k, dtype=torch.float64))  # one camera per bin
        torch.testing.assert_close(az.diff(), torch.full((k - 1,), 360.0 / k, dtype=torch.float64), atol=1e-4, rtol=0)
        assert (cams[:, 1] >= -10.0).all() and (cams[:, 1] <= 60.0).all() and (cams[:, 2] == 2.5).all()
        phases.append(az[0].item() / (360.0 / k))
    # Kolmogorov-Smirnov against U[0, 1): 1.63 / sqrt(n) is the 1 % critical value.
    u = torch.tensor(sorted(phases), dtype=torch.float64)
    i = torch.arange(1, draws + 1, dtype=torch.float64)
    ks = torch.maximum(i / draws - u, u - (i - 1) / draws).max().item()
    assert ks < 1.63 / draws**0.5, ks


def test_four_stratified_views_see_front_both_sides_and_back():
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        cams = C.stratified_cameras(4, g, (-10.0, 40.0), 3.0)
        labels = sorted(C.view_label(cams[:, 0], cams[:, 1]).tolist())
        assert labels == sorted(C.VIEWS.index(v) for v in ("front", "side", "side", "back"))
    # The generator decides everything.
    a = C.stratified_cameras(5, torch.Generator().manual_seed(7), (0.0, 30.0), 3.0)
    assert torch.equal(a, C.stratified_cameras(5, torch.Generator().manual_seed(7), (0.0, 30.0), 3.0))


def test_camera_bank_is_a_fixed_ring_with_spread_elevations():
    bank = C.camera_bank(100, (-10.0, 50.0), 3.0)
    assert torch.equal(bank, C.camera_bank(100, (-10.0, 50.0), 3.0))
    torch.testing.assert_close(bank[:, 0], torch.arange(100) * 3.6)
    assert (bank[:, 2] == 3.0).all()
    counts = torch.histc(bank[:, 1], bins=4, min=-10.0, max=50.0)  # low discrepancy: 25 each, give or take 2
    assert (counts - 25).abs().max() <= 2, counts
    ring = C.camera_bank(8, (15.0, 15.0), 2.0)
    assert torch.equal(ring[:, 1], torch.full((8,), 15.0)) and torch.equal(ring[:, 0], torch.arange(8) * 45.0)


@pytest.mark.parametrize("make", [lambda *a: C.stratified_cameras(a[0], torch.Generator(), *a[1:]), C.camera_bank])
def test_camera_sets_reject_bad_inputs(make):
    with pytest.raises(ValueError, match="number of cameras"):
        make(0, (0.0, 10.0), 1.0)
    with pytest.raises(ValueError, match="elevation_range"):
        make(4, (20.0, 10.0), 1.0)
    with pytest.raises(ValueError, match="distance"):
        make(4, (0.0, 10.0), 0.0)
