"""Unit tests of the torch core (mmfusion_sklearn._torch) and the training layer
(mmfusion_sklearn._training.nets), each part on tiny tensors."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmfusion_sklearn._torch.encoders import (
    EmbeddingEncoder,
    ImageEncoder,
    ModuleEncoder,
    TabularEncoder,
    VolumeEncoder,
    build_encoder,
    compute_features,
    module_output_width,
)
from mmfusion_sklearn._torch.fusion import (
    ClassifierHead,
    MLPFusion,
    ModalityTokens,
    ProjectionHead,
    TransformerFusion,
)
from mmfusion_sklearn._torch.losses import (
    SigmoidContrastiveLoss,
    contrastive_pairs,
    make_contrastive_loss,
    random_modality_mask,
    simultaneous_dropout_loss,
    weighted_cross_entropy,
)
from mmfusion_sklearn._torch.model import MultimodalFusionNet
from mmfusion_sklearn._training.batches import BatchIterator, FusionDataset
from mmfusion_sklearn._training.nets import ContrastiveNet, FusionNet


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# -- encoders ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoder, x",
    [
        (TabularEncoder(5, 8), torch.randn(4, 5)),
        (TabularEncoder(5, 8, hidden_dim=3, dropout=0.0), torch.randn(4, 5)),
        (EmbeddingEncoder(12, 8), torch.randn(3, 12)),
        (ImageEncoder(3, 8), torch.randn(2, 3, 9, 7)),
        (ImageEncoder(1, 8, widths=(4,)), torch.randn(1, 1, 5, 5)),
        (VolumeEncoder(1, 8, widths=(4, 8)), torch.randn(2, 1, 5, 6, 7)),
    ],
)
def test_encoder_output_shape(encoder, x):
    out = encoder(x)
    assert out.shape == (len(x), 8)
    assert torch.isfinite(out).all()


def test_build_encoder_dispatch():
    assert isinstance(build_encoder("tabular", 4, 8), TabularEncoder)
    assert isinstance(build_encoder("embedding", 4, 8), EmbeddingEncoder)
    image = build_encoder("image", (3, 8, 8), 8)
    assert isinstance(image, ImageEncoder) and image(torch.randn(2, 3, 8, 8)).shape == (2, 8)
    volume = build_encoder("volume", (2, 4, 4, 4), 8)
    assert isinstance(volume, VolumeEncoder)
    assert volume(torch.randn(2, 2, 4, 4, 4)).shape == (2, 8)
    with pytest.raises(ValueError, match="Unknown modality kind 'audio'"):
        build_encoder("audio", 4, 8)


def test_embedding_encoder_normalises_its_input():
    encoder = EmbeddingEncoder(6, 4)
    x = torch.randn(3, 6)
    # LayerNorm first: an affine change of each vector does not change the output
    torch.testing.assert_close(encoder(x), encoder(5.0 * x + 2.0), atol=1e-4, rtol=1e-4)


def _backbone():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(2))  # (B, 2, 2, 2)


def test_module_encoder_wraps_a_user_module():
    backbone = _backbone()
    width = module_output_width(backbone, (1, 9, 9))
    assert width == 8 and backbone.training  # train mode restored
    encoder = ModuleEncoder(backbone, width, 5)
    assert encoder(torch.randn(3, 1, 9, 9)).shape == (3, 5)
    assert encoder.backbone is backbone


def test_compute_features_batches_like_one_pass():
    backbone = _backbone()
    x = torch.randn(7, 1, 6, 6)
    features = compute_features(backbone, x, batch_size=3, device="cpu")
    assert features.shape == (7, 8) and not features.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(features, backbone.eval()(x).flatten(1))


# -- tokens, fusion, heads ---------------------------------------------------------------


def test_modality_tokens_learned_start_at_zero():
    tokens = ModalityTokens(3, 4)
    assert isinstance(tokens.tokens, nn.Parameter) and tokens.tokens.requires_grad
    assert torch.equal(tokens.tokens, torch.zeros(3, 4))
    assert any(p is tokens.tokens for p in tokens.parameters())


def test_modality_tokens_zero_mode_is_fixed():
    tokens = ModalityTokens(3, 4, learned=False)
    assert list(tokens.parameters()) == []
    assert "tokens" in tokens.state_dict()
    assert torch.equal(tokens.tokens, torch.zeros(3, 4))


def test_modality_tokens_replace_exactly_the_absent_positions():
    tokens = ModalityTokens(3, 4)
    with torch.no_grad():
        tokens.tokens.copy_(torch.arange(12.0).reshape(3, 4) + 100)
    features = torch.randn(5, 3, 4)
    present = torch.rand(5, 3) > 0.5
    out = tokens(features, present)
    for b in range(5):
        for m in range(3):
            expected = features[b, m] if present[b, m] else tokens.tokens[m]
            assert torch.equal(out[b, m], expected)


def test_modality_token_gets_gradient_only_from_absent_positions():
    tokens = ModalityTokens(2, 3)
    features = torch.randn(4, 2, 3)
    present = torch.tensor([[True, False], [True, True], [True, False], [True, True]])
    tokens(features, present).sum().backward()
    assert torch.equal(tokens.tokens.grad[0], torch.zeros(3))  # never absent
    assert torch.equal(tokens.tokens.grad[1], torch.full((3,), 2.0))  # absent twice


@pytest.mark.parametrize(
    "fusion, embed_dim",
    [(MLPFusion(3, 8), 8), (TransformerFusion(3, 8), 8), (TransformerFusion(2, 6), 6)],
)
def test_fusion_shapes(fusion, embed_dim):
    n_modalities = fusion.norm.weight.shape[0]
    tokens = torch.randn(4, n_modalities, embed_dim)
    out = fusion(tokens)
    assert out.shape == (4, embed_dim) and torch.isfinite(out).all()


def test_fusion_uses_every_modality():
    for fusion in (MLPFusion(2, 4, dropout=0.0), TransformerFusion(2, 4, dropout=0.0)):
        fusion.eval()
        tokens = torch.randn(3, 2, 4)
        changed = tokens.clone()
        changed[:, 1] = torch.randn(3, 4)
        assert not torch.allclose(fusion(tokens), fusion(changed))


def test_transformer_fusion_heads_divide_embed_dim():
    fusion = TransformerFusion(2, 6, n_heads=4)
    assert fusion.encoder.layers[0].self_attn.num_heads == 3


def test_classifier_and_projection_heads():
    z = torch.randn(5, 8)
    assert ClassifierHead(8, 3)(z).shape == (5, 3)
    projected = ProjectionHead(8, 4)(z)
    assert projected.shape == (5, 4)
    torch.testing.assert_close(projected.norm(dim=1), torch.ones(5))
    assert ProjectionHead(8)(z).shape == (5, 128)


# -- the network -------------------------------------------------------------------------


class _Recorder(nn.Module):
    """An encoder that remembers what it was given."""

    def __init__(self, in_features, embed_dim):
        super().__init__()
        self.linear = nn.Linear(in_features, embed_dim)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.linear(x)


def _network(fusion="mlp", missing_token="learned", n_classes=2, dims=(3, 5)):
    encoders = {name: TabularEncoder(d, 8, dropout=0.0) for name, d in zip("abc", dims)}
    return MultimodalFusionNet(
        encoders, n_classes, embed_dim=8, fusion=fusion, missing_token=missing_token,
        dropout=0.0, projection_dim=4,
    )


def test_encoders_receive_only_present_rows():
    net = MultimodalFusionNet(
        {"a": _Recorder(3, 4), "b": _Recorder(2, 4), "c": _Recorder(2, 4)}, 2, embed_dim=4
    )
    inputs = {"a": torch.randn(5, 3), "b": torch.randn(5, 2), "c": torch.randn(5, 2)}
    present = torch.tensor(
        [[True, False, False], [True, True, False], [True, False, False],
         [True, True, False], [True, False, False]]
    )
    features = net.encode(inputs, present)
    assert features.shape == (5, 3, 4)
    (seen_a,), (seen_b,) = net.encoders["a"].seen, net.encoders["b"].seen
    assert torch.equal(seen_a, inputs["a"])  # all present: one call on everything
    assert torch.equal(seen_b, inputs["b"][[1, 3]])
    assert net.encoders["c"].seen == []  # absent everywhere: never called
    assert torch.equal(features[[0, 2, 4], 1], torch.zeros(3, 4))
    torch.testing.assert_close(features[[1, 3], 1], net.encoders["b"].linear(inputs["b"][[1, 3]]))


@pytest.mark.parametrize("fusion", ["mlp", "transformer"])
def test_network_ignores_values_of_absent_modalities(fusion):
    net = _network(fusion).eval()
    inputs = {"a": torch.randn(4, 3), "b": torch.randn(4, 5)}
    present = torch.tensor([[True, True], [True, False], [False, True], [True, False]])
    logits = net(inputs, present)
    assert logits.shape == (4, 2)
    garbage = {"a": inputs["a"].clone(), "b": inputs["b"].clone()}
    garbage["b"][[1, 3]] = 1e6
    garbage["a"][2] = float("nan")
    torch.testing.assert_close(net(garbage, present), logits)


def test_network_rejects_unknown_fusion():
    with pytest.raises(ValueError, match="fusion must be 'mlp' or 'transformer'. Got 'x'"):
        _network(fusion="x")


def test_zero_missing_token_network_has_no_token_parameters():
    names = [name for name, _ in _network(missing_token="zero").named_parameters()]
    assert not any(name.startswith("tokens") for name in names)
    assert "tokens.tokens" in [name for name, _ in _network().named_parameters()]


@pytest.mark.parametrize("fusion", ["mlp", "transformer"])
def test_fuse_configurations_equals_separate_fuse_calls(fusion):
    net = _network(fusion, dims=(3, 5, 2)).eval()
    with torch.no_grad():
        net.tokens.tokens.normal_()  # make tokens differ from zero-filling
    features = torch.randn(6, 3, 8)
    present = torch.rand(6, 3) > 0.3
    present[:, 0] |= ~present.any(dim=1)
    full, single = net.fuse_configurations(features, present)
    assert full.shape == (6, 8) and single.shape == (3, 6, 8)
    torch.testing.assert_close(full, net.fuse(features, present))
    for m in range(3):
        only_m = torch.zeros_like(present)
        only_m[:, m] = present[:, m]
        torch.testing.assert_close(single[m], net.fuse(features, only_m))


def test_single_modality_masks():
    net = _network(dims=(3, 5, 2))
    present = torch.tensor([[True, False, True], [True, True, True]])
    masks = net.single_modality_masks(present)
    assert masks.shape == (3, 2, 3)
    assert masks[1].tolist() == [[False, False, False], [False, True, False]]
    assert masks[2].tolist() == [[False, False, True], [False, False, True]]


# -- losses ------------------------------------------------------------------------------


def test_weighted_cross_entropy():
    logits = torch.randn(4, 3)
    y = torch.tensor([0, 2, 1, 2])
    per_sample = F.cross_entropy(logits, y, reduction="none")
    torch.testing.assert_close(weighted_cross_entropy(logits, y), per_sample.mean())
    weight = torch.tensor([1.0, 2.0, 0.0, 3.0])
    torch.testing.assert_close(
        weighted_cross_entropy(logits, y, weight), (per_sample * weight).sum() / 6.0
    )
    mask = torch.tensor([True, False, True, True])
    torch.testing.assert_close(
        weighted_cross_entropy(logits, y, weight, mask),
        (per_sample[[0, 2, 3]] * weight[[0, 2, 3]]).sum() / 4.0,
    )
    nobody = weighted_cross_entropy(logits, y, mask=torch.zeros(4, dtype=torch.bool))
    assert nobody.item() == 0.0 and torch.isfinite(nobody)


def test_simultaneous_dropout_loss_by_hand():
    batch, n_classes, n_modalities = 5, 3, 2
    logits_full = torch.randn(batch, n_classes)
    logits_single = torch.randn(n_modalities, batch, n_classes)
    y = torch.tensor([0, 1, 2, 1, 0])
    present = torch.tensor([[True, True], [True, False], [False, True], [True, True],
                            [True, False]])
    weight = torch.tensor([1.0, 2.0, 1.0, 0.5, 1.0])

    def ce(logits, rows):
        losses = [weight[i] * -F.log_softmax(logits[i], dim=0)[y[i]] for i in rows]
        return sum(losses) / sum(weight[i] for i in rows)

    by_hand = ce(logits_full, range(batch)) + 0.7 * (
        ce(logits_single[0], [0, 1, 3, 4]) + ce(logits_single[1], [0, 2, 3])
    )
    loss = simultaneous_dropout_loss(logits_full, logits_single, y, present, weight, 0.7)
    torch.testing.assert_close(loss, by_hand)
    # lambda = 0 is plain cross-entropy of the full input
    torch.testing.assert_close(
        simultaneous_dropout_loss(logits_full, logits_single, y, present, weight, 0.0),
        ce(logits_full, range(batch)),
    )


def test_simultaneous_dropout_loss_ignores_samples_lacking_the_modality():
    logits_full = torch.randn(3, 2)
    logits_single = torch.randn(2, 3, 2, requires_grad=True)
    y = torch.tensor([0, 1, 1])
    present = torch.tensor([[True, True], [True, False], [False, True]])
    loss = simultaneous_dropout_loss(logits_full, logits_single, y, present)
    changed = logits_single.detach().clone()
    changed[1, 1] = torch.tensor([50.0, -50.0])  # sample 1 lacks modality 1
    changed[0, 2] = torch.tensor([-9.0, 9.0])  # sample 2 lacks modality 0
    torch.testing.assert_close(
        simultaneous_dropout_loss(logits_full, changed, y, present), loss.detach()
    )
    loss.backward()
    assert torch.equal(logits_single.grad[1, 1], torch.zeros(2))
    assert torch.equal(logits_single.grad[0, 2], torch.zeros(2))
    assert logits_single.grad[0, 0].abs().sum() > 0


def _random_presence(generator, batch=300, n_modalities=3):
    present = torch.rand(batch, n_modalities, generator=generator) > 0.4
    empty = ~present.any(dim=1)
    present[empty, 0] = True
    return present


@pytest.mark.parametrize("rate", [0.3, 0.9, 1.0])
def test_random_modality_mask_properties(rate):
    generator = torch.Generator().manual_seed(1)
    present = _random_presence(generator)
    keep = random_modality_mask(present, rate, generator)
    assert keep.dtype == torch.bool and keep.shape == present.shape
    assert keep.any(dim=1).all()  # never drops everything
    assert not (keep & ~present).any()  # never keeps an absent modality
    if rate == 1.0:
        assert (keep.sum(dim=1) == 1).all()  # exactly the one forced back
    dropped = (present & ~keep).sum().item() / present.sum().item()
    assert dropped > 0.1


def test_random_modality_mask_rate_zero_and_seeding():
    present = _random_presence(torch.Generator().manual_seed(2))
    assert torch.equal(random_modality_mask(present, 0.0), present)
    a = random_modality_mask(present, 0.5, torch.Generator().manual_seed(3))
    b = random_modality_mask(present, 0.5, torch.Generator().manual_seed(3))
    c = random_modality_mask(present, 0.5, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_contrastive_pairs():
    assert contrastive_pairs(3, "unimodal") == [(0, 1), (0, 2), (1, 2)]
    assert contrastive_pairs(3, "fused") == [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    assert contrastive_pairs(1, "unimodal") == []
    assert contrastive_pairs(1, "fused") == [(0, 1)]


def _log1pexp(x):
    return math.log1p(math.exp(x))


def test_sigmoid_contrastive_loss_by_hand():
    loss_fn = SigmoidContrastiveLoss()
    assert math.isclose(loss_fn.log_scale.exp().item(), 10.0, rel_tol=1e-6)
    assert loss_fn.bias.item() == -10.0
    views = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])
    y = torch.tensor([0, 1])
    everyone = torch.ones(2, 2, dtype=torch.bool)
    # logits = 10 * <u0_i, u1_j> - 10 = [[0, 0], [-10, -10]]; labels [[+, -], [-, +]]
    expected = (math.log(2) + math.log(2) + _log1pexp(-10) + _log1pexp(10)) / 4
    loss = loss_fn(views, everyone, y, [(0, 1)])
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)
    # sample 1 lacks view 1: only column j = 0 counts
    masked = torch.tensor([[True, True], [True, False]])
    expected_masked = (math.log(2) + _log1pexp(-10)) / 2
    assert math.isclose(loss_fn(views, masked, y, [(0, 1)]).item(), expected_masked,
                        rel_tol=1e-5)


def test_balanced_sigmoid_contrastive_loss_by_hand():
    loss_fn = make_contrastive_loss("balanced")
    assert loss_fn.balanced and loss_fn.bias.item() == 0.0
    assert math.isclose(loss_fn.log_scale.exp().item(), 10.0, rel_tol=1e-6)
    views = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]],
                          [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    y = torch.tensor([0, 0, 1])
    everyone = torch.ones(2, 3, dtype=torch.bool)
    cosine = views[0] @ views[1].T
    same = y[:, None] == y[None, :]
    losses = torch.where(same, F.softplus(-10 * cosine), F.softplus(10 * cosine))
    # positives (5 of 9 pairs) and negatives (4) count half each, whatever their shares
    expected = 0.5 * losses[same].mean() + 0.5 * losses[~same].mean()
    loss = loss_fn(views, everyone, y, [(0, 1)])
    assert math.isclose(loss.item(), expected.item(), rel_tol=1e-5)
    unweighted = SigmoidContrastiveLoss(init_bias=0.0)(views, everyone, y, [(0, 1)])
    assert not math.isclose(loss.item(), unweighted.item(), rel_tol=1e-3)
    # cosines of pairs of different samples: same class (0, 1), (1, 0); others differ
    same_mean, diff_mean = loss_fn.pair_cosines()
    off = ~torch.eye(3, dtype=torch.bool)
    assert math.isclose(same_mean, cosine[same & off].mean().item(), rel_tol=1e-6)
    assert math.isclose(diff_mean, cosine[~same].mean().item(), rel_tol=1e-6)
    loss_fn.reset_pair_stats()
    assert all(math.isnan(v) for v in loss_fn.pair_cosines())


def test_make_contrastive_loss_settings():
    paper = make_contrastive_loss("paper")
    assert paper.bias.item() == -10.0 and not paper.balanced
    with pytest.raises(ValueError, match="kind must be one of"):
        make_contrastive_loss("siglip")


def _separable(n=96, seed=0):
    torch.manual_seed(seed)
    y = torch.arange(n) % 2
    a = torch.randn(n, 4) + 1.0 * y[:, None]
    b = torch.randn(n, 3) - 1.0 * y[:, None]
    return FusionDataset({"a": a, "b": b}, torch.ones(n, 2, dtype=torch.bool), y,
                         torch.ones(n))


@pytest.mark.parametrize("loss", ["balanced", "paper"])
def test_balanced_contrastive_stage_separates_classes_where_the_paper_init_pulls_together(
    loss,
):
    # two classes: about half of all pairs are positives. From SigLIP's bias -10 the
    # quickest way down is to pull every projection together, different classes
    # included; the balanced loss starting at bias 0 separates the classes instead
    torch.manual_seed(0)
    module = MultimodalFusionNet({"a": nn.Linear(4, 16), "b": nn.Linear(3, 16)}, 2,
                                 embed_dim=16, projection_dim=16)
    net = ContrastiveNet(module, loss=loss, optimizer=torch.optim.AdamW, lr=1e-2,
                         max_epochs=30, batch_size=32, train_split=None, verbose=0,
                         iterator_seed=0)
    net.fit(_separable(), None)
    same, other = net.history[-1, "same_class_cosine"], net.history[-1, "diff_class_cosine"]
    if loss == "balanced":
        assert net.history[-1, "train_loss"] < math.log(2) - 0.1
        assert same - other > 0.2 and other < 0.0
    else:
        assert other > 0.5  # different classes end up close together


def test_sigmoid_contrastive_loss_averages_view_pairs_and_skips_empty_ones():
    loss_fn = SigmoidContrastiveLoss(init_scale=2.0, init_bias=0.5)
    views = F.normalize(torch.randn(3, 4, 5), dim=-1)
    y = torch.tensor([0, 1, 0, 1])
    present = torch.ones(3, 4, dtype=torch.bool)
    one = loss_fn(views, present, y, [(0, 1)])
    two = loss_fn(views, present, y, [(0, 2)])
    both = loss_fn(views, present, y, [(0, 1), (0, 2)])
    torch.testing.assert_close(both, (one + two) / 2)
    present[2] = False  # view 2 absent for everyone: its pair takes no part
    torch.testing.assert_close(loss_fn(views, present, y, [(0, 1), (0, 2)]), one)
    by_hand = -F.logsigmoid(
        torch.where(y[:, None] == y[None, :], 1.0, -1.0) * (2.0 * views[0] @ views[1].T + 0.5)
    ).mean()
    torch.testing.assert_close(one, by_hand)


def test_sigmoid_contrastive_loss_without_valid_pair_is_a_differentiable_zero():
    loss_fn = SigmoidContrastiveLoss()
    views = F.normalize(torch.randn(2, 3, 4), dim=-1).requires_grad_(True)
    present = torch.tensor([[True, True, True], [False, False, False]])
    loss = loss_fn(views, present, torch.tensor([0, 1, 0]), [(0, 1)])
    assert loss.item() == 0.0
    loss.backward()  # a batch without pairs must not break the training step
    assert torch.equal(views.grad, torch.zeros_like(views))
    assert loss_fn.bias.grad.item() == 0.0


def test_sigmoid_contrastive_gradient_reaches_scale_and_bias():
    loss_fn = SigmoidContrastiveLoss()
    views = F.normalize(torch.randn(2, 4, 3), dim=-1).requires_grad_(True)
    loss = loss_fn(views, torch.ones(2, 4, dtype=torch.bool), torch.tensor([0, 0, 1, 1]),
                   [(0, 1)])
    loss.backward()
    assert loss_fn.log_scale.grad is not None and loss_fn.log_scale.grad.abs() > 0
    assert loss_fn.bias.grad is not None and loss_fn.bias.grad.abs() > 0
    assert views.grad.abs().sum() > 0


# -- data set and batches ----------------------------------------------------------------


def _dataset(n=10):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    inputs = {
        "a": torch.randn(n, 3, generator=g) + 2.0 * y[:, None],
        "b": torch.randn(n, 4, generator=g) - 2.0 * y[:, None],
    }
    present = torch.ones(n, 2, dtype=torch.bool)
    present[: n // 4, 0] = False
    present[n // 4 : n // 2, 1] = False
    return FusionDataset(inputs, present, y, torch.ones(n))


def _order(iterator):
    return torch.cat([X["inputs"]["a"][:, 0] for X, _ in iterator])


def test_fusion_dataset_batches_and_subsets():
    data = _dataset()
    assert len(data) == 10 and torch.equal(data.weight, torch.ones(10))
    X, y = data[torch.tensor([3, 1])]
    assert set(X) == {"inputs", "present", "weight"}
    assert torch.equal(X["inputs"]["b"], data.inputs["b"][[3, 1]])
    assert torch.equal(y, torch.tensor([1, 1]))
    subset = data.subset(torch.tensor([0, 9]))
    assert len(subset) == 2 and subset.inputs["a"] is data.inputs["a"]  # no copy
    inputs, present, labels, _ = subset.materialise()
    assert torch.equal(present, data.present[[0, 9]]) and torch.equal(labels, y.new_tensor(
        [int(data.y[0]), int(data.y[9])]))
    assert torch.equal(inputs["b"], data.inputs["b"][[0, 9]])
    assert set(subset.materialise(["a"])[0]) == {"a"}
    # a subset of a subset maps back to the original rows
    inner = subset.subset(torch.tensor([1]))
    assert torch.equal(inner.batch(torch.tensor([0]))[0]["inputs"]["a"], data.inputs["a"][[9]])
    assert FusionDataset(data.inputs, data.present).batch(torch.tensor([0]))[1] is None


def test_batch_iterator_covers_every_index_once_per_epoch():
    data = _dataset(10)
    iterator = BatchIterator(data, batch_size=3, shuffle=True, seed=0)
    assert len(iterator) == 4
    first, second = _order(iterator), _order(iterator)
    for order in (first, second):
        assert len(order) == 10
        assert torch.equal(order.sort().values, data.inputs["a"][:, 0].sort().values)
    assert not torch.equal(first, second)  # a new permutation at every pass
    assert not torch.equal(first, data.inputs["a"][:, 0])
    plain = BatchIterator(data, batch_size=4)
    assert torch.equal(_order(plain), data.inputs["a"][:, 0])
    assert [len(y) for _, y in plain] == [4, 4, 2]


def test_batch_iterator_seeded_shuffling_is_reproducible():
    data = _dataset(10)
    a = _order(BatchIterator(data, batch_size=4, shuffle=True, seed=7))
    b = _order(BatchIterator(data, batch_size=4, shuffle=True, seed=7))
    c = _order(BatchIterator(data, batch_size=4, shuffle=True, seed=8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_batch_iterator_merges_trailing_singleton_when_training():
    data = _dataset(7)
    training = BatchIterator(data, batch_size=3, shuffle=True, seed=0, drop_singleton=True)
    assert len(training) == 2
    assert [len(y) for _, y in training] == [3, 4]
    assert len(_order(training)) == 7
    assert [len(y) for _, y in BatchIterator(data, batch_size=3)] == [3, 3, 1]
    lone = BatchIterator(_dataset(1), batch_size=3, drop_singleton=True)
    assert [len(y) for _, y in lone] == [1]


# -- a few training steps ----------------------------------------------------------------


def _net_kwargs(epochs):
    return dict(
        optimizer=torch.optim.Adam, lr=1e-2, max_epochs=epochs, batch_size=8,
        train_split=None, verbose=0, iterator_seed=0,
    )


@pytest.mark.parametrize("objective", ["simultaneous", "random", "none"])
def test_fusion_net_loss_decreases(objective):
    data = _dataset(24)
    net = FusionNet(_network(dims=(3, 4)), objective=objective, **_net_kwargs(12))
    net.fit(data, None)
    losses = net.history[:, "train_loss"]
    assert len(losses) == 12 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0]
    logits = net.forward(data)
    assert logits.shape == (24, 2)
    accuracy = (logits.argmax(dim=1) == data.y).float().mean().item()
    assert accuracy > 0.9


def test_fusion_net_simultaneous_infer_returns_every_configuration():
    data = _dataset(6)
    net = FusionNet(_network(dims=(3, 4)), objective="simultaneous", **_net_kwargs(1))
    net.initialize()
    X, y = data.batch(torch.arange(6))
    full, single = net.infer(X)
    assert full.shape == (6, 2) and single.shape == (2, 6, 2)
    loss = net.get_loss((full, single), y, X=X)
    torch.testing.assert_close(
        loss, simultaneous_dropout_loss(full, single, y, X["present"], X["weight"])
    )
    net.set_params(objective="none")
    assert net.infer(X)[1] is None


def test_contrastive_net_loss_decreases_and_leaves_classifier_alone():
    data = _dataset(24)
    module = _network(dims=(3, 4))
    classifier = {k: v.clone() for k, v in module.classifier.state_dict().items()}
    tokens = module.tokens.tokens.detach().clone()
    net = ContrastiveNet(module, contrastive="fused", **_net_kwargs(12))
    net.fit(data, None)
    losses = net.history[:, "train_loss"]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < 0.7 * losses[0]
    for key, value in module.classifier.state_dict().items():
        assert torch.equal(value, classifier[key])
    assert not torch.equal(module.tokens.tokens, tokens)  # tokens do learn here
    assert net.criterion_.bias.item() != 0.0  # scale and bias are trained too
    views, view_present = net.infer(data.batch(torch.arange(5))[0])
    assert views.shape == (3, 5, 4)  # two unimodal views and the fused one
    assert view_present[2].all() and torch.equal(view_present[:2], data.present[:5].T)


def test_contrastive_net_unimodal_survives_batches_without_pairs():
    data = _dataset(12)
    data.present[:, 0] = True
    data.present[:, 1] = torch.arange(12) < 2  # most batches hold no sample with "b"
    net = ContrastiveNet(_network(dims=(3, 4)), contrastive="unimodal", **_net_kwargs(2))
    net.set_params(batch_size=4)
    net.fit(data, None)
    assert all(math.isfinite(v) for v in net.history[:, "train_loss"])


def test_zero_tokens_are_zeros_after_the_per_modality_norm():
    # plain zero-filling: the LayerNorm bias of an absent modality must not reach the
    # fusion block (a zero before the norm would become that bias: a learned token)
    torch.manual_seed(0)
    encoders = {"a": nn.Linear(3, 4), "b": nn.Linear(2, 4)}
    features = torch.randn(5, 2, 4)
    present = torch.tensor([[True, False]] * 5)
    for missing_token, changes in (("zero", False), ("learned", True)):
        net = MultimodalFusionNet(encoders, n_outputs=2, embed_dim=4,
                                  missing_token=missing_token).eval()
        before = net.fuse(features, present)
        with torch.no_grad():
            net.fusion.norm.bias[1] += 1.0
        after = net.fuse(features, present)
        assert torch.allclose(before, after) is not changes, missing_token
