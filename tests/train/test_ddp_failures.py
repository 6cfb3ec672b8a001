"""A training process of a group that dies: one line from the others and the launcher, and its exit code."""

from __future__ import annotations

import pytest

from instrec.train import distributed
from instrec.train.distributed import PEER_LOST, PeerLost, exit_code, killed_line, stops_with_its_peers

# what rank 0 got from gloo when rank 1 was killed (SIGKILL) mid-epoch: a page of traceback
GLOO = ("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:63147: "
        "Connection reset by peer. This is typically caused by a remote worker hanging")


def _failing(error):
    @stops_with_its_peers
    def train():
        raise error

    return train


def test_a_collective_failing_in_a_group_is_one_line(monkeypatch):
    monkeypatch.setattr(distributed, "world", lambda: (0, 2))
    with pytest.raises(PeerLost, match="another training process stopped.*--resume") as e:
        _failing(RuntimeError(GLOO))()
    assert e.value.exit_code == PEER_LOST
    with pytest.raises(RuntimeError, match="shapes"):  # a bug of its own stays itself
        _failing(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))()


def test_outside_a_group_nothing_changes():
    with pytest.raises(RuntimeError, match="Connection reset") as e:
        _failing(RuntimeError(GLOO))()
    assert not isinstance(e.value, PeerLost)


def _failed(rank, code, when):
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    f = ProcessFailure(local_rank=rank, pid=100 + rank, exitcode=code, error_file="/nonexistent")
    f.timestamp = when
    return f


def test_the_killed_process_is_named_and_its_exit_code_wins():
    # rank 1 killed (out of memory); rank 0 then lost it and stopped of itself: 137, not rank 0's code
    failures = {0: _failed(0, PEER_LOST, 20), 1: _failed(1, -9, 10)}
    assert exit_code(failures) == 137
    assert killed_line(failures, 2) == ("training process 1 of 2 was killed by SIGKILL (out of memory?); "
                                        "continue the run with --resume")
    assert killed_line({0: _failed(0, 1, 10), 1: _failed(1, -15, 20)}, 2) is None  # rank 0 said why itself
    assert "process 0 of 3 was killed by SIGSEGV" in killed_line({0: _failed(0, -11, 10)}, 3)
