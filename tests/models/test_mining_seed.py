"""The triplet cap's random stream: fixed when the head is built, apart from the global RNG, and
carried through checkpoints (issue 29: the seed used to be drawn from the global RNG at first use)."""

import torch

from lightning_siamese.models import TripletHead


def batch(seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(5).repeat_interleave(4)
    return torch.randn(len(labels), 6, generator=g, dtype=torch.float64), labels


def capped_head() -> TripletHead:
    return TripletHead(6, margin=1.0, mining="all", max_triplets=4, mining_seed=None)


def draws(head: TripletHead, steps: int = 4) -> list[float]:
    emb, labels = batch()
    return [float(head.batch_loss(emb, labels)) for _ in range(steps)]


def test_an_unseeded_cap_draws_the_same_subsets_whatever_else_used_the_global_rng() -> None:
    torch.manual_seed(7)  # seed_everything(7), then the model is built
    first = draws(capped_head())
    torch.manual_seed(7)
    head = capped_head()
    torch.rand(1000)  # other code (weights, dropout, augmentation) draws before the first step
    assert draws(head) == first


def test_mining_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(7)
    head = capped_head()
    state = torch.get_rng_state()
    draws(head)
    assert torch.equal(torch.get_rng_state(), state)


def test_the_run_seed_picks_the_subsets() -> None:
    torch.manual_seed(7)
    head = capped_head()
    assert head.cap is not None and head.cap.seed != 7  # derived: not the global generator's own stream
    first = draws(head)
    torch.manual_seed(8)
    assert draws(capped_head()) != first


def test_old_and_current_mining_states_load() -> None:
    torch.manual_seed(7)
    fresh = draws(capped_head())
    # A checkpoint from before seeds were fixed at construction, saved before any draw: nothing to restore.
    torch.manual_seed(7)
    head = capped_head()
    head.load_mining_state({"seed": None, "generators": {}})
    assert draws(head) == fresh
    # The current format (also the old one once it had drawn): a seed and each device's generator state.
    running = TripletHead(6, margin=1.0, mining="all", max_triplets=4, mining_seed=3)
    draws(running, 2)
    state = running.mining_state()
    assert set(state) == {"seed", "generators"} and state["seed"] == 3 and set(state["generators"]) == {"cpu"}
    rest = draws(running)
    resumed = capped_head()  # another run seed: the checkpoint's seed and stream win
    resumed.load_mining_state(state)
    assert draws(resumed) == rest
    # A CUDA generator saved on a GPU machine is skipped where there is no GPU; the seed is kept.
    if not torch.cuda.is_available():
        elsewhere = capped_head()
        elsewhere.load_mining_state({"seed": 3, "generators": {"cuda:0": torch.zeros(16, dtype=torch.uint8)}})
        assert draws(elsewhere) == draws(TripletHead(6, margin=1.0, mining="all", max_triplets=4, mining_seed=3))


def test_a_head_without_a_cap_has_no_mining_state_to_keep() -> None:
    head = TripletHead(6, mining="hard")
    assert head.mining_state() == {"seed": None, "generators": {}}
    head.load_mining_state({"seed": 11, "generators": {"cpu": torch.Generator().get_state()}})  # ignored
    emb, labels = batch()
    assert float(head.batch_loss(emb, labels)) == float(TripletHead(6, mining="hard").batch_loss(emb, labels))
