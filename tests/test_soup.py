"""Weight soups: the mean of fine-tunes of one network (bidsapp/train/soup.py)."""

import json

import numpy as np
import pytest
import torch

from bidsapp.classes import LABELS
from bidsapp.model.network import ARCH, ARCHS, SliceStackClassifier
from bidsapp.model.predict import DEFAULT_WEIGHTS, mirrored_logits
from bidsapp.train.soup import soup_state


def _save(net, path, arch=ARCH):
    torch.save({k: v.half() for k, v in net.state_dict().items()}, path)
    path.with_suffix(".json").write_text(json.dumps({"architecture": arch}))
    return path


def _nudged(seed: int, scale: float = 0.01) -> SliceStackClassifier:
    """The shipped network with every weight moved a little: a stand-in for a fine-tune."""
    net = SliceStackClassifier(len(LABELS), ARCH)
    net.load_state_dict({k: v.float() for k, v in torch.load(DEFAULT_WEIGHTS, weights_only=True).items()})
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p += scale * p.abs().mean() * torch.randn(p.shape, generator=g)
    return net


def test_soup_is_the_weighted_mean_of_its_ingredients(tmp_path):
    a, b = _nudged(1), _nudged(2)
    pa, pb = _save(a, tmp_path / "a.pt"), _save(b, tmp_path / "b.pt")
    sa = {k: v.half().float() for k, v in a.state_dict().items()}
    sb = {k: v.half().float() for k, v in b.state_dict().items()}
    uniform = soup_state([pa, pb])
    tilted = soup_state([pa, pb], [0.25, 0.75])
    for k in sa:
        assert torch.allclose(uniform[k], (sa[k] + sb[k]) / 2, atol=1e-6)
        assert torch.allclose(tilted[k], 0.25 * sa[k] + 0.75 * sb[k], atol=1e-6)
    assert all(v.dtype == torch.float32 for v in soup_state([pa], [1.0]).values())


def test_soup_of_close_fine_tunes_classifies_like_them(tmp_path):
    """The point of a soup: fine-tunes of one start average into a working network, whose
    logits lie between its ingredients' (not noise)."""
    a, b = _nudged(3), _nudged(4)
    soup = SliceStackClassifier(len(LABELS), ARCH)
    soup.load_state_dict(soup_state([_save(a, tmp_path / "a.pt"), _save(b, tmp_path / "b.pt")]))
    x = torch.from_numpy(np.random.default_rng(0).random((2, 12, 128, 128), dtype=np.float32))
    g = torch.zeros((2, 2))
    za, zb, zs = (mirrored_logits(n.eval(), x, g) for n in (a, b, soup))
    spread = (za - zb).abs().max()
    assert (zs - (za + zb) / 2).abs().max() < 0.5 * spread + 1e-3
    assert torch.equal(za.argmax(1), zs.argmax(1)) or torch.equal(zb.argmax(1), zs.argmax(1))


@pytest.mark.parametrize("coefficients", [[0.5], [0.6, 0.6], [1.5, -0.5]])
def test_soup_refuses_coefficients_that_are_not_a_mean(tmp_path, coefficients):
    pa, pb = _save(_nudged(5), tmp_path / "a.pt"), _save(_nudged(6), tmp_path / "b.pt")
    with pytest.raises(ValueError, match="coefficients"):
        soup_state([pa, pb], coefficients)


def test_soup_refuses_ingredients_of_different_networks(tmp_path):
    pa = _save(_nudged(7), tmp_path / "a.pt")
    wide = _save(SliceStackClassifier(len(LABELS), ARCHS["wide"]), tmp_path / "wide.pt", ARCHS["wide"])
    with pytest.raises(ValueError, match="different networks"):
        soup_state([pa, wide])
    (tmp_path / "wide.json").write_text(json.dumps({"architecture": ARCH}))  # a card that lies
    with pytest.raises(ValueError, match="tensors differ"):
        soup_state([pa, wide])
