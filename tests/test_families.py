"""Today's model families, built offline from small configurations with random weights: prepare covers every
matrix product (against FlopCounterMode), with everything off the outputs are the float model's, with W8A8 and
thermal noise on they are not, and docs/api.md's table says what was measured."""
import re
from pathlib import Path

import pytest
import torch
from torchvision.models import ConvNeXt, SwinTransformer
from torchvision.models.convnext import CNBlockConfig
from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformerBlockV2
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, T5Config, T5Model,
                          WhisperConfig)
from transformers.models.whisper.modeling_whisper import WhisperEncoder

import noisesim

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"
IDS = torch.randint(0, 100, (2, 16), generator=torch.Generator().manual_seed(0))


def _gpt2():
    return GPT2LMHeadModel(GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                                      bos_token_id=0, eos_token_id=0)), (IDS,), lambda o: o.logits


def _llama():
    cfg = LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg), (IDS,), lambda o: o.logits


def _t5():
    cfg = T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    return T5Model(cfg), {"input_ids": IDS, "decoder_input_ids": IDS}, lambda o: o.last_hidden_state


def _whisper():
    cfg = WhisperConfig(num_mel_bins=16, d_model=32, encoder_layers=2, encoder_attention_heads=4,
                        encoder_ffn_dim=64, max_source_positions=16)
    x = torch.randn(2, 16, 32, generator=torch.Generator().manual_seed(0))
    return WhisperEncoder(cfg), (x,), lambda o: o.last_hidden_state


def _vision(factory):
    def build():
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        return factory(), (x,), lambda o: o
    return build


def _swin(v2: bool = False):
    """Two stages of two blocks on 8 x 8 patches: the second block of the first stage shifts its 4 x 4 windows."""
    blocks = dict(block=SwinTransformerBlockV2, downsample_layer=PatchMergingV2) if v2 else {}
    return SwinTransformer(patch_size=[4, 4], embed_dim=24, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4],
                           num_classes=10, **blocks)


FAMILIES = {"GPT-2": _gpt2, "Llama-style decoder (grouped-query attention)": _llama, "T5": _t5,
            "Whisper-style encoder": _whisper, "Swin": _vision(_swin), "Swin V2": _vision(lambda: _swin(v2=True)),
            "ConvNeXt": _vision(lambda: ConvNeXt([CNBlockConfig(24, 48, 2), CNBlockConfig(48, None, 2)],
                                                 num_classes=10))}


def _call(model, inputs):
    return model(**inputs) if isinstance(inputs, dict) else model(*inputs)


def _documented() -> dict[str, str]:
    rows = re.findall(r"^\| ([^|]+?) \| [^|]+ \| (\d+%) \|", DOCS.read_text(), re.M)
    return dict(rows)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_family_is_covered_whole_and_unchanged_with_everything_off(family):
    torch.manual_seed(0)
    model, inputs, pick = FAMILIES[family]()
    model.eval()
    sim = noisesim.prepare(model, noisesim.SimConfig(weight_bits=None, act_bits=None)).eval()
    with torch.no_grad():
        coverage = noisesim.measure_coverage(sim, inputs)
        assert torch.allclose(pick(_call(sim, inputs)), pick(_call(model, inputs)), atol=1e-5, rtol=1e-5)
    assert coverage.fraction == 1.0, coverage.summary()
    documented = _documented().get("Swin" if family == "Swin V2" else family)
    assert documented == f"{coverage.fraction:.0%}", (family, documented)


@pytest.mark.parametrize("family", ["GPT-2", "Llama-style decoder (grouped-query attention)", "Swin"])
def test_the_routed_products_are_simulated(family):
    """With W8A8 and thermal noise every instrumented layer runs (MACs counted) and the outputs move."""
    torch.manual_seed(0)
    model, inputs, pick = FAMILIES[family]()
    model.eval()
    sim = noisesim.prepare(model, noisesim.SimConfig(weight_bits=8, act_bits=8, noise_type="thermal", e_mac=1.0))
    noisesim.calibrate(sim, [inputs])
    with torch.no_grad():
        out, ref = pick(_call(sim.eval(), inputs)), pick(_call(model, inputs))
    layers = noisesim.sim_layers(sim)
    products = [m for m in layers if "sdpa" in m.name or m.name.endswith((".scores", ".mix"))]
    assert products and all(m.macs > 0 for m in layers)
    assert (out - ref).abs().max() > 1e-3
