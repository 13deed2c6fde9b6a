"""NeRF fields and volume rendering: hand-computed renders, box intersections, the hash encoding against a
slow loop twin, trilinear interpolation, analytic normals, independent instances and a fit to the toy world."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from diffrep import toyworld
from diffrep.cameras import camera_bank, camera_rays
from diffrep.errors import InputError
from diffrep.reps.fields import PRIMES, Field, HashField, VoxelField, hash_encode, level_resolutions
from diffrep.reps.volume import density_gradient, intersect_box, render_rays, stratified_samples, unit_normals, volume_render

BLOB = {"blob_density": 5.0, "blob_radius": 0.5}
HASH = {"levels": 3, "features": 2, "log2_table": 6, "base_res": 2, "max_res": 9, "hidden": 8, "bound": 1.0}


def voxel_field(n: int = 2, seed: int = 0) -> VoxelField:
    field = VoxelField(n, 8, 1.0, generator=torch.Generator().manual_seed(seed), **BLOB)
    with torch.no_grad():  # away from the tiny initial values, so instances differ visibly
        field.grids.normal_(generator=torch.Generator().manual_seed(seed + 1))
    return field


def hash_field(n: int = 2, seed: int = 0) -> HashField:
    field = HashField(n, **HASH, generator=torch.Generator().manual_seed(seed), **BLOB)
    with torch.no_grad():
        field.tables.normal_(generator=torch.Generator().manual_seed(seed + 1))
    return field


def some_rays(n: int, res: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays ``[n, 2 res^2, 3]``: two toy-world cameras per instance, different per instance."""
    cams = torch.tensor([[30.0 * i, 10.0 + 5 * i, 3.2] for i in range(2 * n)])
    o, d = camera_rays(cams, res, 34.0)
    return o.reshape(n, -1, 3), d.reshape(n, -1, 3)


# Volume rendering ------------------------------------------------------------------------------------


def test_volume_render_hand_computed():
    # One ray, 3 samples at t = 1, 1.5, 2.5, box exit t_far = 3: delta = (0.5, 1, 0.5).
    sigma = torch.tensor([1.0, 2.0, 0.5])  # tau = sigma delta = (0.5, 2, 0.25)
    rgb = torch.eye(3)  # red, green, blue
    t = torch.tensor([1.0, 1.5, 2.5])
    out = volume_render(sigma, rgb, t, 0.5, t_far=torch.tensor(3.0))
    # w_1 = 1 - e^-0.5, w_2 = e^-0.5 (1 - e^-2), w_3 = e^-2.5 (1 - e^-0.25); opacity = 1 - e^-2.75.
    torch.testing.assert_close(out["weights"], torch.tensor([0.393469, 0.524446, 0.018157]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out["opacity"], torch.tensor(0.936072), atol=1e-6, rtol=0)
    # C = w_i c_i + (1 - opacity) 0.5 (background 0.5, 1 - opacity = 0.063928).
    torch.testing.assert_close(out["rgb"], torch.tensor([0.425433, 0.556410, 0.050121]), atol=1e-6, rtol=0)
    # depth = 1 w_1 + 1.5 w_2 + 2.5 w_3 (the background counts 0).
    torch.testing.assert_close(out["depth"], torch.tensor(1.225531), atol=1e-6, rtol=0)
    # Without t_far the last interval is 1e10: the last sample takes all that is left, w_3 = e^-2.5.
    out = volume_render(sigma, rgb, t, torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(out["weights"][2], torch.tensor(0.082085), atol=1e-6, rtol=0)
    torch.testing.assert_close(out["opacity"], torch.tensor(1.0))
    torch.testing.assert_close(out["depth"], torch.tensor(1.385350), atol=1e-6, rtol=0)


def test_volume_render_empty_ray_is_background():
    out = volume_render(torch.zeros(2, 5), torch.rand(2, 5, 3), torch.linspace(0, 1, 5).expand(2, 5),
                        torch.tensor([0.1, 0.2, 0.3]), t_far=torch.ones(2))
    torch.testing.assert_close(out["rgb"], torch.tensor([[0.1, 0.2, 0.3]] * 2))
    assert out["opacity"].eq(0).all() and out["depth"].eq(0).all()


def test_intersect_box_hit_graze_miss():
    r2 = math.sqrt(0.5)
    rays = [  # origin, direction, (t_near, t_far, hit)
        ((-3.0, 0.0, 0.0), (1.0, 0.0, 0.0), (2.0, 4.0, True)),  # straight through
        ((-3.0, -3.0, 0.5), (r2, r2, 0.0), (2 / r2, 4 / r2, True)),  # diagonal, in through an edge
        ((0.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, True)),  # starts inside
        ((-3.0, 1.0, 0.0), (1.0, 0.0, 0.0), (2.0, 4.0, True)),  # grazes: slides along the face y = 1
        ((0.0, 2.0, 0.0), (r2, -r2, 0.0), (0.0, 0.0, False)),  # touches the edge x = y = 1 at one point
        ((-3.0, 1.5, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, False)),  # passes beside the box
        ((3.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, False)),  # box behind the origin
    ]
    o, d = (torch.tensor([r[i] for r in rays]) for i in (0, 1))
    t_near, t_far, hit = intersect_box(o.view(1, -1, 3), d.view(1, -1, 3), 1.0)  # any leading shape
    assert hit[0].tolist() == [r[2][2] for r in rays]
    torch.testing.assert_close(t_near[0], torch.tensor([r[2][0] for r in rays]))
    torch.testing.assert_close(t_far[0], torch.tensor([r[2][1] for r in rays]))


def test_stratified_samples_one_per_bin():
    t_near, t_far = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 2.5])
    mid = stratified_samples(t_near, t_far, 4)
    torch.testing.assert_close(mid[0], torch.tensor([1.25, 1.75, 2.25, 2.75]))
    t = stratified_samples(t_near, t_far, 4, torch.Generator().manual_seed(0))
    bins = ((t - t_near[:, None]) / (t_far - t_near)[:, None] * 4).floor()
    assert bins.tolist() == [[0, 1, 2, 3]] * 2


def test_render_rays_miss_and_chunks():
    field = voxel_field(n=2)
    o, d = some_rays(2)
    o[:, 0], d[:, 0] = torch.tensor([5.0, 5.0, 5.0]), torch.tensor([1.0, 0.0, 0.0])  # points away from the box
    out = render_rays(field, o, 3 * d, samples=8, bound=1.0, background=0.8, normals=True)  # dirs need not be unit
    torch.testing.assert_close(out["rgb"][:, 0], torch.full((2, 3), 0.8))
    assert out["opacity"][:, 0].eq(0).all() and out["depth"][:, 0].eq(0).all() and out["normals"][:, 0].eq(0).all()
    seen = out["opacity"] > 0
    assert (out["depth"][seen] / out["opacity"][seen]).min() > 2.19  # world units: the box is 2.2 or more away
    small = render_rays(field, o, d, samples=8, bound=1.0, background=0.8, normals=True, max_points=50)
    for key in out:
        torch.testing.assert_close(small[key], out[key])
    with pytest.raises(InputError, match="samples"):
        render_rays(field, o, d, samples=0, bound=1.0, background=0.8)


# Fields ----------------------------------------------------------------------------------------------


def test_voxel_trilinear_hand_computed():
    # One cell (R = 2, vertices at -1 and 1); v[z][y][x] with all 8 values different.
    v = torch.tensor([[[1.0, 2.0], [3.0, 5.0]], [[0.0, 4.0], [-1.0, 7.0]]])
    field = VoxelField(1, 2, 1.0, generator=torch.Generator().manual_seed(0), blob_density=0.0, blob_radius=1.0)
    with torch.no_grad():
        field.grids.copy_(torch.stack([v, v.new_full(v.shape, 0.3), v.new_zeros(v.shape), -v])[None])
    # World (0.5, -0.5, 0) is cell coordinate (0.75, 0.25, 0.5): weights x (0.25, 0.75), y (0.75, 0.25), z (0.5, 0.5).
    # z = 0: .25*.75*1 + .75*.75*2 + .25*.25*3 + .75*.25*5 = 2.4375; z = 1: 0 + .75*.75*4 - .25*.25*1 + .75*.25*7 = 3.5.
    sigma, rgb = field(torch.tensor([[[0.5, -0.5, 0.0]]]))
    torch.testing.assert_close(sigma, torch.tensor([[math.log1p(math.exp(2.96875))]]))  # softplus((2.4375 + 3.5) / 2)
    torch.testing.assert_close(rgb, torch.sigmoid(torch.tensor([[[0.3, 0.0, -2.96875]]])))
    # Outside the box a point takes the border value; density() agrees with forward().
    torch.testing.assert_close(field.raw(torch.tensor([[[3.0, -2.0, -5.0]]]))[0, 0, 0], torch.tensor(2.0))
    points = torch.rand(1, 9, 3) * 2 - 1
    torch.testing.assert_close(field.density(points), field(points)[0])


def test_blob_density_is_added_before_softplus():
    field = VoxelField(1, 4, 1.0, generator=torch.Generator().manual_seed(0), blob_density=3.0, blob_radius=0.5)
    with torch.no_grad():
        field.grids.zero_()
    points = torch.tensor([[[0.0, 0.0, 0.0], [0.3, 0.4, 0.0], [0.0, 0.0, 1.0]]])  # |x| = 0, 0.5, 1
    torch.testing.assert_close(field.density(points), F.softplus(torch.tensor([[3.0, 0.0, -3.0]])))


def slow_hash_encode(points01, tables, resolutions):
    """Instant-NGP's encoding written out: loops over instances, points, levels and the 8 corners."""
    n, P, _ = points01.shape
    T = tables.shape[2]
    rows = []
    for i in range(n):
        for j in range(P):
            p = [points01[i, j, a].clamp(0.0, 1.0) for a in range(3)]
            feats = []
            for level, N in enumerate(resolutions):
                x = [p[a] * N for a in range(3)]
                c = [min(math.floor(x[a].item()), N - 1) for a in range(3)]
                f = torch.zeros(tables.shape[3], dtype=tables.dtype)
                for corner in range(8):
                    b = [(corner >> a) & 1 for a in range(3)]
                    vx, vy, vz = (c[a] + b[a] for a in range(3))
                    if (N + 1) ** 3 <= T:
                        row = vx + (N + 1) * vy + (N + 1) ** 2 * vz
                    else:
                        row = ((vx * PRIMES[0]) ^ (vy * PRIMES[1]) ^ (vz * PRIMES[2])) % T
                    weight = 1.0
                    for a in range(3):
                        frac = x[a] - c[a]
                        weight = weight * (frac if b[a] else 1.0 - frac)
                    f = f + weight * tables[i, level, row]
                feats.append(f)
            rows.append(torch.cat(feats))
    return torch.stack(rows).view(n, P, -1)


def test_hash_encode_matches_slow_twin():
    resolutions = (2, 5, 9)  # 27 vertices fit a 64-row table (direct); 216 and 1000 do not (hashed)
    T = 64
    rows = {((x * PRIMES[0]) ^ (y * PRIMES[1]) ^ (z * PRIMES[2])) % T for x in range(6) for y in range(6) for z in range(6)}
    assert len(rows) < 6**3  # level 1's hash collides
    g = torch.Generator().manual_seed(0)
    tables = torch.randn(2, 3, T, 2, generator=g, dtype=torch.float64).requires_grad_()
    points = torch.rand(2, 6, 3, generator=g, dtype=torch.float64)
    points[0, 0] = torch.tensor([1.0, 0.0, 1.0])  # on the cube's corner: the last cell's far vertex
    points[1, 0] = torch.tensor([1.3, -0.2, 0.5])  # outside: clamped
    points.requires_grad_()
    fast, slow = hash_encode(points, tables, resolutions), slow_hash_encode(points, tables, resolutions)
    torch.testing.assert_close(fast, slow)
    cotangent = torch.randn(fast.shape, generator=g, dtype=torch.float64)
    grads = [torch.autograd.grad((out * cotangent).sum(), (tables, points)) for out in (fast, slow)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    assert grads[0][1][1, 0, :2].eq(0).all() and grads[0][1][1, 0, 2] != 0  # clamped coordinates carry no gradient
    torch.testing.assert_close(hash_encode(points, tables, torch.tensor(resolutions)), fast)


def test_hash_encode_of_no_points_and_a_render_that_skips_every_sample():
    """An occupancy grid can leave a chunk of rays with no sample to evaluate (a hash NeRF's evaluation renders did)."""
    tables = torch.randn(2, 3, 64, 2)
    assert hash_encode(torch.zeros(2, 0, 3), tables, (2, 5, 9)).shape == (2, 0, 6)
    field, n = hash_field(n=2), 2
    o, d = torch.tensor([[[0.0, 0.0, -3.0]]]).expand(n, 4, 3), torch.tensor([[[0.0, 0.0, 1.0]]]).expand(n, 4, 3)
    empty = torch.zeros(n, 4, 4, 4, dtype=torch.bool)
    out = render_rays(field, o, d, samples=8, bound=1.0, background=0.0, occupancy=empty)
    assert out["opacity"].eq(0).all() and out["rgb"].eq(0).all()


def test_level_resolutions_geometric():
    assert level_resolutions(4, 16, 128) == (16, 32, 64, 128)
    assert level_resolutions(1, 16, 16) == (16,)
    assert hash_field().resolutions == (2, 4, 9)


def test_total_variation_is_the_grids_own_differences_and_flat_where_the_density_is():
    """The voxel grid's TV on its own vertices is Plenoxels' mean of ``sqrt(Δx² + Δy² + Δz² + eps)`` of its raw
    density (a ramp of slope a along x: ``sqrt((a h)² + eps)``, h the vertex spacing; a constant: ``sqrt(eps)``);
    neither the blob nor the colour channels enter; a sharp step costs what a ramp of the same rise costs."""
    field = VoxelField(3, 5, 1.0, generator=torch.Generator().manual_seed(0), **BLOB)
    x = torch.linspace(-1.0, 1.0, 5)  # grids[i, c, k, j, l] sits at (x_l, y_j, z_k)
    with torch.no_grad():
        field.grids.zero_()
        field.grids[0, 0] = 3.0 * x.view(1, 1, 5)  # raw = 3 x: differences 3 h along x only
        field.grids[1, 0] = 7.0  # constant density
        field.grids[2, 0] = 6.0 * (x > 0).float().view(1, 1, 5)  # a step of the ramp's rise, 6, at one vertex
        field.grids[:, 1:] = torch.randn(3, 3, 5, 5, 5)  # colour: not counted
    tv = field.total_variation(5, eps=1e-6)
    ramp = math.sqrt((3.0 * 0.5) ** 2 + 1e-6)
    torch.testing.assert_close(tv, torch.tensor([ramp, 1e-3, (6.0 + 3 * 1e-3) / 4]), rtol=1e-4, atol=1e-6)
    assert tv[2].item() == pytest.approx(tv[0].item(), rel=1e-3)  # a sharp surface costs no more than a blurred one
    tv.sum().backward()
    assert field.grids.grad[:, 1:].abs().max() == 0 and field.grids.grad[1].abs().max() == 0


@pytest.mark.parametrize("make", [voxel_field, hash_field])
def test_total_variation_matches_a_slow_loop_over_vertices(make):
    field, G = make(), 4
    axis = torch.linspace(-1.0, 1.0, G)
    for i in range(2):
        terms = []
        for v in itertools.product(range(G - 1), repeat=3):
            points = [list(v)] + [[v[b] + (a == b) for b in range(3)] for a in range(3)]  # v and its 3 neighbours
            raw = field.raw(axis[torch.tensor(points)].expand(2, 4, 3), 1)[i, :, 0]
            terms.append(((raw[1:] - raw[0]) ** 2).sum().add(1e-6).sqrt())
        torch.testing.assert_close(field.total_variation(G)[i], torch.stack(terms).mean(), rtol=1e-5, atol=1e-6)
    if make is voxel_field:  # its own lattice, read straight off the grid, equals the lookups of the generic field
        own = field.grids.shape[-1]
        torch.testing.assert_close(field.total_variation(own), Field.total_variation(field, own), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [voxel_field, hash_field])
@pytest.mark.parametrize("G", [4, 8])
def test_total_variation_over_occupied_cells_sums_those_cells_alone(make, G):
    """With an occupancy grid the TV is the slow loop's sum over the lattice cells whose centres it holds occupied,
    divided by all cells (all occupied: the whole TV); the field is read at their vertices only (elsewhere no
    gradient), and a grid of other cells (here 5^3) is read at each TV cell's centre."""
    field = make()
    occupancy = torch.rand(2, 5, 5, 5, generator=torch.Generator().manual_seed(4)) > 0.6
    axis = torch.linspace(-1.0, 1.0, G)
    tv, read = field.total_variation(G, occupancy=occupancy), [set(), set()]
    for i in range(2):
        terms = []
        for v in itertools.product(range(G - 1), repeat=3):
            centre = [int((v[a] + 0.5) * 5 / (G - 1)) for a in range(3)]
            if not occupancy[i][tuple(centre)]:
                continue
            points = [list(v)] + [[v[b] + (a == b) for b in range(3)] for a in range(3)]
            read[i] |= {tuple(p) for p in points}
            raw = field.raw(axis[torch.tensor(points)].expand(2, 4, 3), 1)[i, :, 0]
            terms.append(((raw[1:] - raw[0]) ** 2).sum().add(1e-6).sqrt())
        torch.testing.assert_close(tv[i], torch.stack(terms).sum() / (G - 1) ** 3, rtol=1e-5, atol=1e-6)
    full = torch.ones(2, G - 1, G - 1, G - 1, dtype=torch.bool)
    torch.testing.assert_close(field.total_variation(G, occupancy=full), field.total_variation(G), rtol=1e-5, atol=1e-6)
    if make is voxel_field and G == field.grids.shape[-1]:  # the grid's own vertices: gradient only where read
        field.total_variation(G, occupancy=occupancy)[0].backward()
        moved = {(x, y, z) for z, y, x in (field.grids.grad[0, 0] != 0).nonzero().tolist()}
        assert moved == read[0]


def test_the_occupied_cells_vertices_are_those_the_total_variation_reads():
    from diffrep.reps.fields import lattice_vertices

    cells = torch.zeros(1, 3, 3, 3, dtype=torch.bool)
    cells[0, 2, 0, 1] = True  # at the lattice's far x face: its neighbours along x wrap nowhere
    need = lattice_vertices(cells)
    expected = {(2, 0, 1), (3, 0, 1), (2, 1, 1), (2, 0, 2)}
    assert {tuple(v) for v in need[0].nonzero().tolist()} == expected


# Normals ---------------------------------------------------------------------------------------------


class Sphere:
    """An analytic density: a soft ball of radius 0.5 round ``centre`` (``n`` copies)."""

    centre = torch.tensor([0.1, -0.2, 0.05])

    def density(self, points):
        return 50.0 * torch.sigmoid(40.0 * (0.5 - (points - self.centre).norm(dim=-1)))

    def __call__(self, points):
        return self.density(points), torch.full((*points.shape[:-1], 3), 0.5)


@pytest.mark.parametrize("eps", [None, 1e-2])  # autograd, central differences
def test_normals_of_a_sphere_point_outward(eps):
    sphere = Sphere()
    g = torch.Generator().manual_seed(0)
    true = F.normalize(torch.randn(2, 50, 3, generator=g), dim=-1)
    points = sphere.centre + (0.4 + 0.2 * torch.rand(2, 50, 1, generator=g)) * true  # in the shell where sigma varies
    normals = unit_normals(density_gradient(sphere, points, eps))
    assert F.cosine_similarity(normals, true, dim=-1).min() > 0.999
    # Rendered normals (weighted by the ray weights) against the normal where the ray meets the sphere.
    o, d = some_rays(2, res=8)
    out = render_rays(sphere, o, d, samples=64, bound=1.0, background=0.8, normals=True, normal_eps=eps)
    surface = o + (out["depth"] / out["opacity"].clamp_min(1e-6))[..., None] * d
    on = out["opacity"] > 0.5
    assert on.sum() > 20
    cos = F.cosine_similarity(out["normals"], surface - sphere.centre, dim=-1)
    assert cos[on].min() > 0.99
    assert (out["normals"].norm(dim=-1) <= out["opacity"] + 1e-5).all()


@pytest.mark.parametrize("eps", [None, 1e-2])
@pytest.mark.parametrize("make", [voxel_field, hash_field])
def test_normals_carry_gradients_unless_asked_not_to(make, eps):
    field = make(n=1)
    o, d = some_rays(1)
    render = lambda **kw: render_rays(field, o, d, samples=8, bound=1.0, background=0.8, normals=True, normal_eps=eps, **kw)  # noqa: E731
    grads = []
    for normals_grad in (True, False):
        field.zero_grad()
        out = render(normals_grad=normals_grad)
        out["normals"][..., 0].sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in field.parameters()]))
        assert grads[-1].abs().sum() > 0  # through the ray weights at least
    assert not torch.allclose(grads[0], grads[1])
    with torch.no_grad():  # normals also under no_grad, without a graph
        quiet = render()
    assert quiet["normals"].grad_fn is None and quiet["rgb"].grad_fn is None
    torch.testing.assert_close(quiet["normals"], out["normals"])


# Instances -------------------------------------------------------------------------------------------


def single(field, i: int, make):
    """Instance ``i`` of ``field`` as a field of its own (n = 1)."""
    one = make(n=1)
    with torch.no_grad():
        for name, p in one.named_parameters():
            p.copy_(dict(field.named_parameters())[name][i:i + 1])
    return one


@pytest.mark.parametrize("make", [voxel_field, hash_field])
def test_instances_are_independent(make):
    field = make(n=2)
    o, d = some_rays(2)
    render = lambda f, o, d: render_rays(f, o, d, samples=12, bound=1.0, background=0.8, normals=True)  # noqa: E731
    before = render(field, o, d)
    # Batched equals one by one.
    for i in range(2):
        alone = render(single(field, i, make), o[i:i + 1], d[i:i + 1])
        for key in before:
            torch.testing.assert_close(alone[key][0], before[key][i], atol=1e-6, rtol=1e-5)
    # Changing instance 1 leaves instance 0 alone; a loss on instance 0 has no gradient on instance 1.
    with torch.no_grad():
        for p in field.parameters():
            p[1].add_(torch.randn(p[1].shape, generator=torch.Generator().manual_seed(5)))
    after = render(field, o, d)
    for key in before:
        assert torch.equal(after[key][0], before[key][0]) and not torch.equal(after[key][1], before[key][1])
    after["rgb"][0].sum().backward()
    assert all(p.grad[1].eq(0).all() and p.grad[0].abs().sum() > 0 for p in field.parameters())


def test_fields_check_their_options():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(InputError, match="resolution"):
        VoxelField(1, 1, 1.0, generator=g, **BLOB)
    with pytest.raises(InputError, match="max_res"):
        HashField(1, **{**HASH, "max_res": 1}, generator=g, **BLOB)
    with pytest.raises(InputError, match="blob_radius"):
        VoxelField(1, 4, 1.0, generator=g, blob_density=1.0, blob_radius=0.0)


def test_same_generator_same_field():
    a, b = (HashField(2, **HASH, generator=torch.Generator().manual_seed(3), **BLOB) for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert a.tables.abs().max() <= 1e-4


# A fit to the toy world --------------------------------------------------------------------------------

FIT_PSNR = 29.0  # measured 30.5 dB on the held-out cameras
FIT_IOU = 0.85  # measured 0.92 at sigma > 3


def test_voxel_field_fits_a_toy_world_instance():
    """A 32^3 VoxelField fitted by Adam to 16 renders of one toy-world teapot (a fixed world light, so the
    Lambertian shading is baked into colour) renders 4 held-out cameras and recovers its occupancy."""
    s = toyworld.sample_scenes(toyworld.ToyWorldConfig(n=2, seed=0))
    i = 1  # a teapot
    cams = torch.cat([camera_bank(16, (-10.0, 60.0), toyworld.DISTANCE),
                      torch.tensor([[22.5 + 90 * k, 5.0 + 12 * k, toyworld.DISTANCE] for k in range(4)])])
    V = len(cams)
    one = lambda x: x[i:i + 1].expand(V, *x.shape[1:])  # noqa: E731
    images = toyworld.render(one(s["kind"]), one(s["colour"]), one(s["instance"]), cams, one(s["light"]), 32)
    target = ((images + 1) / 2).permute(0, 2, 3, 1).reshape(1, V, -1, 3)
    o, d = (x.reshape(1, V, -1, 3) for x in camera_rays(cams, 32, toyworld.FOV_DEG))
    background = (toyworld.BACKGROUND + 1) / 2
    # Fit on random batches of the training cameras' rays.
    g = torch.Generator().manual_seed(0)
    field = VoxelField(1, 32, 1.0, generator=g, blob_density=5.0, blob_radius=0.5)
    optimiser = torch.optim.Adam(field.parameters(), lr=0.1)
    o_train, d_train, c_train = (x[:, :16].reshape(1, -1, 3) for x in (o, d, target))
    for _ in range(300):
        batch = torch.randint(0, o_train.shape[1], (2048,), generator=g)
        out = render_rays(field, o_train[:, batch], d_train[:, batch], samples=32, bound=1.0, background=background,
                          generator=g)
        loss = (out["rgb"] - c_train[:, batch]).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        out = render_rays(field, o[:, 16:].reshape(1, -1, 3), d[:, 16:].reshape(1, -1, 3), samples=64, bound=1.0,
                          background=background)
        psnr = -10 * math.log10(float((out["rgb"] - target[:, 16:].reshape(1, -1, 3)).square().mean()))
        c = (torch.arange(32) + 0.5) / 16 - 1
        grid = torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1).view(1, -1, 3)
        occupied = toyworld.occupancy(int(s["kind"][i]), s["instance"][i], grid[0])
        dense = field.density(grid)[0] > 3.0
        iou = float((dense & occupied).sum() / (dense | occupied).sum())
    assert psnr > FIT_PSNR and iou > FIT_IOU, (psnr, iou)


class Ramp(torch.nn.Module):
    """Density ``c (1 + z)`` (rising along +z, so its normals ``-∇σ/|∇σ|`` point along -z), grey colour."""

    def __init__(self, c: float = 2.0):
        super().__init__()
        self.c = c

    def density(self, points):
        return self.c * (1 + points[..., 2])

    def forward(self, points):
        return self.density(points), torch.full_like(points, 0.5)


def test_orientation_penalises_only_samples_facing_away():
    """Ref-NeRF's ``sum_i w_i max(0, n_i . d)^2``: 0 looking up the ramp (normals face the camera), the
    opacity looking down it (normals along the ray, n . d = 1), with the weights returned beside it."""
    o = torch.tensor([[[0.0, 0.0, -3.0], [0.0, 0.0, 3.0]]])
    d = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]])
    out = render_rays(Ramp(), o, d, samples=16, bound=1.0, background=0.8, normals=True)
    assert out["orientation"][0, 0].item() == pytest.approx(0.0, abs=1e-6)
    assert out["orientation"][0, 1].item() == pytest.approx(out["opacity"][0, 1].item(), rel=1e-5)
    assert out["weights"].shape == (1, 2, 16)
    torch.testing.assert_close(out["weights"].sum(-1), out["opacity"])


def test_occupancy_grid_is_conservative_and_skipping_changes_renders_only_below_its_threshold():
    """Every point denser than the threshold lies in an occupied cell (the voxel grid's values in a cell are
    bounded by its corners); skipping the other cells changes a render by what their density could add."""
    gen = torch.Generator().manual_seed(0)
    field = VoxelField(2, 12, 1.0, generator=gen, blob_density=0.0, blob_radius=0.5)
    with torch.no_grad():  # two random blobs of density in an otherwise empty grid
        field.grids[:, 0] = -8.0
        field.grids[0, 0, 2:6, 3:7, 4:8] = 3.0
        field.grids[1, 0, 7:10, 1:4, 6:11] = 3.0
    grid = field.occupancy_grid(11, 0.01)
    assert 0.05 < grid.float().mean() < 0.6
    points = torch.rand(2, 20000, 3, generator=gen) * 2 - 1
    dense = field.density(points) > 0.01
    cell = ((points + 1) / 2 * 11).long().clamp(0, 10)
    occupied = grid[torch.arange(2)[:, None], cell[..., 0], cell[..., 1], cell[..., 2]]
    assert occupied[dense].all()
    o, d = camera_rays(camera_bank(3, (-10.0, 60.0), 3.2), 16, 34.0)
    o, d = o.reshape(1, -1, 3).expand(2, -1, -1), d.reshape(1, -1, 3).expand(2, -1, -1)
    full = render_rays(field, o, d, samples=24, bound=1.0, background=0.8, normals=True, normal_eps=0.05)
    skip = render_rays(field, o, d, samples=24, bound=1.0, background=0.8, normals=True, normal_eps=0.05, occupancy=grid)
    bound = 1 - math.exp(-0.01 * 2 * math.sqrt(3))  # the opacity density 0.01 adds along the box's diagonal
    for key in ("rgb", "opacity", "normals"):
        torch.testing.assert_close(skip[key], full[key], atol=bound, rtol=0)
    assert (skip["opacity"] - full["opacity"]).abs().max() > 0  # something was skipped


@pytest.mark.parametrize("make", [voxel_field, hash_field])
def test_normals_at_weighty_samples_only_differ_by_the_weight_left_out(make):
    """``normal_weight_min`` drops the normals of samples at or below it in every instance: the rendered normals
    (a weighted sum of unit normals) move by at most the weight left out; colour, opacity and depth do not
    move, and the density is evaluated at fewer points."""
    field = make(n=2)
    o, d = some_rays(2)
    calls = []
    density = field.density
    field.density = lambda x: calls.append(x.shape[1]) or density(x)
    render = lambda w: render_rays(field, o, d, samples=16, bound=1.0, background=0.8, normals=True,  # noqa: E731
                                   normal_eps=0.05, normal_weight_min=w)
    exact, exact_points = render(0.0), sum(calls)
    calls.clear()
    some = render(2e-2)
    assert 0 < sum(calls) < exact_points
    for key in ("rgb", "opacity", "depth", "weights"):
        torch.testing.assert_close(some[key], exact[key], rtol=0, atol=0)
    w = exact["weights"]
    dropped = (w <= 2e-2).all(0, keepdim=True)  # [1, R, S]: no instance above the threshold
    left_out = (w * dropped).sum(-1)  # [n, R]
    gap = (some["normals"] - exact["normals"]).norm(dim=-1)
    assert gap.max() > 0 and left_out.max() > 0
    assert (gap <= left_out + 1e-6).all()
