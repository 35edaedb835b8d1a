"""GLUE SST-2 / MNLI loaders on generated TSV files, and main.py on a tiny saved BERT classifier."""
import pandas as pd
import pytest

from noisesim.experiment.main import main

transformers = pytest.importorskip("transformers")

WORDS = ["good", "bad", "film", "movie", "great", "awful", "a", "the", "is", "was", "cat", "sat"]


@pytest.fixture(scope="module")
def glue(tmp_path_factory):
    root = tmp_path_factory.mktemp("glue")
    (root / "SST-2").mkdir()
    (root / "MNLI").mkdir()
    rows = [(f"the film was {'good' if i % 2 else 'bad'}", i % 2) for i in range(40)]
    for split in ("train", "dev"):
        pd.DataFrame(rows, columns=["sentence", "label"]).to_csv(root / "SST-2" / f"{split}.tsv", sep="\t",
                                                                 index=False)
    gold = ["entailment", "neutral", "contradiction", "-"]  # "-" rows have no gold label and are dropped
    mnli = pd.DataFrame({"index": range(40), "promptID": 0, "pairID": 0, "genre": "fiction",
                         "sentence1": ['the cat "sat"'] * 40, "sentence2": ["a cat is good"] * 40,
                         "gold_label": [gold[i % 4] for i in range(40)]})
    for name in ("train", "dev_matched", "dev_mismatched"):
        mnli.to_csv(root / "MNLI" / f"{name}.tsv", sep="\t", index=False, quoting=3)
    return root


def make_bert(path, labels):
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", '"', *WORDS]) + "\n")
    tok = transformers.BertTokenizerFast(vocab_file=str(vocab))
    cfg = transformers.BertConfig(vocab_size=len(WORDS) + 6, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=64, num_labels=labels)
    transformers.BertForSequenceClassification(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_glue_readers(glue):
    from noisesim.data.glue import read_glue

    texts, y = read_glue("sst2", "train", str(glue))
    assert len(texts) == 40 and y.tolist()[:2] == [0, 1]
    pairs, y = read_glue("mnli_mismatched", "dev", str(glue))
    assert len(pairs) == 30 and pairs[0] == ('the cat "sat"', "a cat is good") and set(y.tolist()) == {0, 1, 2}


@pytest.mark.parametrize("dataset", ["sst2", "mnli", "mnli_mismatched"])
def test_main_runs_bert_base_on_glue(tmp_path, glue, dataset):
    tiny_bert = make_bert(tmp_path, 2 if dataset == "sst2" else 3)
    code = main(["--config", "none", "--model", "bert_base", "--dataset", dataset, "--checkpoint_path", str(tiny_bert),
                 "--data_path", str(glue), "--log_dir", str(tmp_path), "--run_name", "b", "--noise_type", "shot",
                 "--e_mac", "100", "--train_batch_size", "8", "--val_batch_size", "10", "--calibration_batches", "1",
                 "--no-progress", "--no_plot"])
    df = pd.read_csv(tmp_path / "b" / "results.csv")
    layers = pd.read_csv(next((tmp_path / "b" / "layers").glob("*.csv")))
    assert code == 0 and 0 <= df["accuracy"].iloc[0] <= 1
    assert (layers["kind"] == "matmul").sum() == 4  # 2 layers x (scores, context)

