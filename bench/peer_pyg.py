#!/usr/bin/env python3
"""peer_pyg: the PyTorch Geometric peer of sagepipe's benchmarks (issue 7), to put next to the
CUDA backend's numbers on the same GPU. Stdlib + torch + torch_geometric only (no torch_scatter,
torch_sparse or pyg_lib needed). Prints one JSON object per result line on stdout; progress on stderr.

  layer     whole-graph layer-wise PinSage inference with the shapes of bench/bench_infer.c
            (T pin and T board neighbours per node, squared-uniform popularity, weights 1/T;
            m = ReLU(h Q + q); z = ReLU([h | Σ w m(pins) | Σ w m(boards)] W + b); h = z/‖z‖;
            head L2(ReLU(h G1 + g1) G2)), float32, neighbour sums done the PyG way
            (MessagePassing, aggr='sum', message = w * x_j) and with torch.sparse.mm on a CSR
            adjacency; plus the GFLOP/s of a torch.matmul-only pass of the same dense shapes.
  lightgcn  torch_geometric.nn.models.LightGCN trained with BPR on a LightGCN-format split
            (train.txt / test.txt: `user item item ...`), full-ranking recall@20 / ndcg@20
            (all items scored, the user's train items set to -inf, users with test items averaged).
  selftest  CPU, seconds: the aggregations against a dense loop, the two inference variants
            against each other, and the ranking metrics on a hand-made example; exit 1 on failure.

On the GPU machine (from the repository root; DIR holds Gowalla's train.txt and test.txt, which are
not in the repository: copy /work/shared/data/gowalla into an ignored folder and carry it there):
  python3 bench/peer_pyg.py selftest                     # CPU, ~5 s, exit 1 on failure
  python3 bench/peer_pyg.py layer --device cuda           # bench_infer's default shapes, fp32 (no TF32)
  python3 bench/peer_pyg.py lightgcn --device cuda --data DIR --epochs 1000 --time-limit 240 --eval-every 10
Small CPU runs: layer --device cpu --nodes 2000 --pins 1500 --nbrs 10 --dim 32;
lightgcn --device cpu --data DIR --subsample 0.05 --epochs 1.
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import torch_geometric
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.models import LightGCN


def log(msg):
    print(f"peer_pyg: {msg}", file=sys.stderr, flush=True)


def env_info(dev):
    info = {"device": dev.type, "torch": torch.__version__, "pyg": torch_geometric.__version__,
            "python": platform.python_version(), "matmul_precision": torch.get_float32_matmul_precision()}
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
        info["cuda"] = torch.version.cuda
    else:
        info["gpu"] = None
        info["cpu_threads"] = torch.get_num_threads()
    return info


def emit(obj):
    print(json.dumps(obj), flush=True)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_runs(fn, dev, warmup, repeat):
    """Median and min seconds of `repeat` calls of fn() after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    sync(dev)
    ts = []
    for _ in range(repeat):
        if dev.type == "cuda":
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            fn()
            e1.record()
            e1.synchronize()
            ts.append(e0.elapsed_time(e1) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return statistics.median(ts), min(ts)


# ------------------------------------------------------------------------------------------ layer

class WeightedSum(MessagePassing):
    """out[dst] = Σ_e w_e x[src_e] over edges (src, dst): the plain PyG way to pool neighbours."""

    def __init__(self):
        super().__init__(aggr="sum")

    def forward(self, x, edge_index, edge_weight):
        return self.propagate(edge_index, x=x, edge_weight=edge_weight)

    def message(self, x_j, edge_weight):
        return edge_weight.view(-1, 1) * x_j


def make_graph(n, npins, T, seed):
    """bench_infer's graph: node u has T pin neighbours floor(x²·P) and T board neighbours
    P + floor(y²·(N−P)), x, y uniform, weights 1/T. Returns (pin_nbr, board_nbr, w), (n, T) each."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, T, generator=g, dtype=torch.float64)
    y = torch.rand(n, T, generator=g, dtype=torch.float64)
    pin = (x * x * npins).floor().long().clamp_(max=npins - 1)
    board = (npins + (y * y * (n - npins)).floor().long()).clamp_(max=n - 1)
    w = torch.full((n, T), 1.0 / T, dtype=torch.float32)
    return pin, board, w


class Aggregators:
    """The neighbour sums of one graph in each implementation: name -> fn(m) -> (pins, boards)."""

    def __init__(self, pin, board, w, dev, impls):
        n, T = pin.shape
        dst = torch.arange(n).repeat_interleave(T)
        wf = w.reshape(-1).to(dev)
        self.nnz = {}
        self.fns = {}
        if "mp" in impls:
            conv = WeightedSum()
            ep = torch.stack([pin.reshape(-1), dst]).to(dev)  # (2, nT): row 0 source, row 1 target
            eb = torch.stack([board.reshape(-1), dst]).to(dev)
            self.nnz["mp"] = ep.size(1)
            self.fns["mp"] = lambda m: (conv(m, ep, wf), conv(m, eb, wf))
        for fmt in ("csr", "coo"):
            if fmt not in impls:
                continue
            # A[u, v] = Σ w over u's edges to v (duplicates summed by coalesce), shape (n, n)
            ap = torch.sparse_coo_tensor(torch.stack([dst, pin.reshape(-1)]).to(dev), wf, (n, n)).coalesce()
            ab = torch.sparse_coo_tensor(torch.stack([dst, board.reshape(-1)]).to(dev), wf, (n, n)).coalesce()
            if fmt == "csr":
                ap, ab = ap.to_sparse_csr(), ab.to_sparse_csr()
            self.nnz[fmt] = ap._nnz()
            self.fns[fmt] = (lambda a, b: lambda m: (torch.sparse.mm(a, m), torch.sparse.mm(b, m)))(ap, ab)


def make_params(d, K, dev, seed):
    g = torch.Generator().manual_seed(seed + 1)

    def mat(r, c):
        return (torch.randn(r, c, generator=g) / math.sqrt(r)).to(dev)

    def vec(c):
        return (0.01 * torch.randn(c, generator=g)).to(dev)

    return {"Q": [mat(d, d) for _ in range(K)], "q": [vec(d) for _ in range(K)],
            "W": [mat(3 * d, d) for _ in range(K)], "b": [vec(d) for _ in range(K)],
            "G1": mat(d, d), "g1": vec(d), "G2": mat(d, d)}


def infer(h, P, agg):
    """Layer-wise inference of every node: h (n, d) -> embeddings (n, d)."""
    for k in range(len(P["Q"])):
        m = torch.relu(torch.addmm(P["q"][k], h, P["Q"][k]))  # (n, d) messages
        pp, pb = agg(m)  # (n, d) each
        z = torch.relu(torch.addmm(P["b"][k], torch.cat([h, pp, pb], dim=1), P["W"][k]))
        h = F.normalize(z, p=2.0, dim=1, eps=1e-12)
    a = torch.relu(torch.addmm(P["g1"], h, P["G1"]))
    return F.normalize(a @ P["G2"], p=2.0, dim=1, eps=1e-12)


def time_matmuls(H, P, dev, a):
    """Median and min seconds of the dense shapes alone: K × (H Q_k, X W_k) + H G1, M G2, no bias/ReLU."""
    n, d = H.shape
    X = torch.randn(n, 3 * d, generator=torch.Generator().manual_seed(a.seed + 3)).to(dev)  # (n, 3d)
    M = torch.empty(n, d, device=dev)
    Z = torch.empty(n, d, device=dev)

    def matmuls():
        for k in range(len(P["Q"])):
            torch.matmul(H, P["Q"][k], out=M)
            torch.matmul(X, P["W"][k], out=Z)
        torch.matmul(H, P["G1"], out=M)
        torch.matmul(M, P["G2"], out=Z)

    with torch.inference_mode():
        return time_runs(matmuls, dev, a.warmup, a.repeat)


def run_layer(a, dev):
    n, npins, T, d, K = a.nodes, a.pins, a.nbrs, a.dim, a.layers
    if not (0 < npins < n and T >= 1 and d >= 1 and K >= 1):
        sys.exit("peer_pyg layer: bad sizes (need 0 < pins < nodes, nbrs, dim, layers >= 1)")
    impls = [s for s in a.impls.split(",") if s]
    bad = [s for s in impls if s not in ("mp", "csr", "coo")]
    if bad:
        sys.exit(f"peer_pyg layer: unknown impl {bad} (mp, csr, coo)")
    info = env_info(dev)
    t0 = time.perf_counter()
    pin, board, w = make_graph(n, npins, T, a.seed)
    aggs = Aggregators(pin, board, w, dev, impls)
    P = make_params(d, K, dev, a.seed)
    h0 = torch.randn(n, d, generator=torch.Generator().manual_seed(a.seed + 2)).to(dev)
    sync(dev)
    log(f"layer: graph and parameters ready in {time.perf_counter() - t0:.1f} s")
    shape = {"nodes": n, "pins": npins, "nbrs_per_type": T, "dim": d, "layers": K}
    flops = K * (2.0 * n * d * d + 2.0 * n * 3 * d * d) + 2 * 2.0 * n * d * d

    # torch.matmul alone on the same shapes (bench_infer's sgemm pass): messages Q, W on [h|pp|pb], head
    t_mm, t_mm_min = time_matmuls(h0, P, dev, a)
    emit({"bench": "peer_pyg_dense", **shape, "gflops": round(flops / 1e9, 3), "seconds": round(t_mm, 5),
          "matmul_gflop_s": round(flops / t_mm / 1e9, 1), "matmul_gflop_s_best": round(flops / t_mm_min / 1e9, 1),
          "repeat": a.repeat, **info})

    ref = None
    best = None
    for name in impls:
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        with torch.inference_mode():
            t, tmin = time_runs(lambda: infer(h0, P, aggs.fns[name]), dev, a.warmup, a.repeat)
            out = infer(h0, P, aggs.fns[name])
        if ref is None:
            ref, diff = out, 0.0
        else:
            diff = (out - ref).abs().max().item()
        peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
        emit({"bench": "peer_pyg_layer", "impl": name, **shape, "nnz_per_type": aggs.nnz[name],
              "seconds": round(t, 5), "seconds_best": round(tmin, 5), "nodes_per_s": round(n / t),
              "matmul_share": round(t_mm / t, 3), "max_abs_diff_vs_first": diff,
              "peak_gib": None if peak is None else round(peak, 2), "repeat": a.repeat, **info})
        del out
        if best is None or t < best[1]:
            best = (name, t)
    emit({"bench": "peer_pyg_layer_best", "impl": best[0], **shape, "seconds": round(best[1], 5),
          "nodes_per_s": round(n / best[1]), **info})


# --------------------------------------------------------------------------------------- lightgcn

def read_lists(path):
    """`user item item ...` lines -> list of (user, [items])."""
    rows = []
    with open(path) as f:
        for line in f:
            tok = line.split()
            if tok:
                rows.append((int(tok[0]), [int(t) for t in tok[1:]]))
    return rows


def load_split(dirname, subsample, seed):
    """Train and test pairs (users re-numbered 0.. when subsampled; items keep their ids)."""
    train, test = read_lists(os.path.join(dirname, "train.txt")), read_lists(os.path.join(dirname, "test.txt"))
    users = sorted({u for u, _ in train} | {u for u, _ in test})
    n_items = 1 + max(max((max(it) for _, it in train if it), default=-1),
                      max((max(it) for _, it in test if it), default=-1))
    if subsample < 1.0:
        g = torch.Generator().manual_seed(seed)
        keep = torch.rand(len(users), generator=g) < subsample
        users = [u for u, k in zip(users, keep.tolist()) if k]
    uid = {u: i for i, u in enumerate(users)}

    def pairs(rows):
        us, its = [], []
        for u, items in rows:
            if u in uid:
                us.extend([uid[u]] * len(items))
                its.extend(items)
        return torch.tensor(us, dtype=torch.long), torch.tensor(its, dtype=torch.long)

    return len(users), n_items, pairs(train), pairs(test)


def rowptr(users, n_users):
    """CSR row pointer of pairs sorted by user."""
    return torch.cat([torch.zeros(1, dtype=torch.long), torch.bincount(users, minlength=n_users).cumsum(0)])


class Ranker:
    """Full-ranking recall@k / ndcg@k: score all items, train items -> -inf, top k, binary relevance,
    ideal DCG over min(|test|, k) items, mean over users with at least one test item."""

    def __init__(self, n_users, n_items, train_pairs, test_pairs, dev, k=20, batch=4096):
        self.n_users, self.n_items, self.k, self.batch, self.dev = n_users, n_items, k, batch, dev
        self.tr = self._sorted(*train_pairs, dev)
        self.te = self._sorted(*test_pairs, dev)
        self.n_test = torch.bincount(test_pairs[0], minlength=n_users).to(dev)
        self.disc = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64, device=dev))  # (k,)
        self.idcg_cum = self.disc.cumsum(0)  # idcg for n relevant = idcg_cum[min(n, k) - 1]

    def _sorted(self, u, i, dev):
        o = torch.argsort(u, stable=True)
        u, i = u[o], i[o]
        return rowptr(u, self.n_users).to(dev), u.to(dev), i.to(dev)

    def _block(self, lists, a, b):
        """(rows, cols) of the pairs of users a..b-1, rows relative to a."""
        ptr, u, i = lists
        s, e = ptr[a].item(), ptr[b].item()
        return u[s:e] - a, i[s:e]

    def evaluate(self, score_fn):
        """score_fn(a, b) -> (b-a, n_items) scores. Returns (recall@k, ndcg@k, users counted)."""
        rsum = nsum = 0.0
        cnt = 0
        for a in range(0, self.n_users, self.batch):
            b = min(a + self.batch, self.n_users)
            s = score_fn(a, b).float().clone()
            r, c = self._block(self.tr, a, b)
            s[r, c] = -math.inf
            top = torch.topk(s, min(self.k, self.n_items), dim=1).indices  # (rows, k)
            rel = torch.zeros_like(s, dtype=torch.bool)
            r, c = self._block(self.te, a, b)
            rel[r, c] = True
            hit = torch.gather(rel, 1, top).double()  # (rows, k)
            nt = self.n_test[a:b]
            ok = nt > 0
            recall = hit.sum(1)[ok] / nt[ok]
            dcg = (hit * self.disc[: hit.size(1)]).sum(1)[ok]
            idcg = self.idcg_cum[(nt[ok].clamp(max=self.k) - 1)]
            rsum += recall.sum().item()
            nsum += (dcg / idcg).sum().item()
            cnt += int(ok.sum().item())
        return rsum / max(cnt, 1), nsum / max(cnt, 1), cnt


def run_lightgcn(a, dev):
    info = env_info(dev)
    t0 = time.perf_counter()
    n_users, n_items, (tu, ti), (su, si) = load_split(a.data, a.subsample, a.seed)
    log(f"lightgcn: {n_users} users, {n_items} items, {tu.numel()} train / {su.numel()} test pairs "
        f"(read in {time.perf_counter() - t0:.1f} s)")
    torch.manual_seed(a.seed)
    n_nodes = n_users + n_items
    # bipartite graph, both directions: user u is node u, item i is node n_users + i
    ei = torch.stack([torch.cat([tu, ti + n_users]), torch.cat([ti + n_users, tu])])
    if a.adj == "csr":
        adj = torch.sparse_coo_tensor(ei, torch.ones(ei.size(1)), (n_nodes, n_nodes)).coalesce()
        adj = adj.to(dev).to_sparse_csr()
    else:
        adj = ei.to(dev)
    train_pos = torch.stack([tu, ti + n_users]).to(dev)  # (2, E) positive user -> item node pairs
    model = LightGCN(n_nodes, embedding_dim=a.emb_dim, num_layers=a.num_layers).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    ranker = Ranker(n_users, n_items, (tu, ti), (su, si), dev, k=20, batch=a.eval_batch)
    E = train_pos.size(1)
    steps_per_epoch = (E + a.batch - 1) // a.batch
    shape = {"users": n_users, "items": n_items, "train_pairs": E, "test_pairs": su.numel(), "dim": a.emb_dim,
             "layers": a.num_layers, "batch": a.batch, "lr": a.lr, "lambda_reg": a.reg, "adj": a.adj,
             "subsample": a.subsample, "steps_per_epoch": steps_per_epoch}

    def evaluate(epoch, train_s, loss):
        t = time.perf_counter()
        model.eval()
        with torch.no_grad():
            emb = model.get_embedding(adj)
            ue, ie = emb[:n_users], emb[n_users:]
            recall, ndcg, cnt = ranker.evaluate(lambda lo, hi: ue[lo:hi] @ ie.T)
        sync(dev)
        model.train()
        emit({"bench": "peer_pyg_lightgcn", **shape, "epoch": round(epoch, 3), "train_seconds": round(train_s, 3),
              "seconds_per_epoch": round(train_s / epoch, 4) if epoch > 0 else None,
              "loss": None if loss is None else round(loss, 5), "recall@20": round(recall, 5),
              "ndcg@20": round(ndcg, 5), "eval_users": cnt, "eval_seconds": round(time.perf_counter() - t, 3),
              **info})

    train_s = 0.0
    done_steps = 0
    last_eval = -1.0
    stop = False
    loss_sum = torch.zeros((), device=dev)
    for ep in range(1, a.epochs + 1):
        sync(dev)
        t_ep = time.perf_counter()
        perm = torch.randperm(E, device=dev)
        loss_sum.zero_()
        steps = 0
        for s in range(steps_per_epoch):
            pos = train_pos[:, perm[s * a.batch:(s + 1) * a.batch]]
            neg = torch.stack([pos[0], torch.randint(n_users, n_nodes, (pos.size(1),), device=dev)])
            eli = torch.cat([pos, neg], dim=1)
            opt.zero_grad()
            pos_rank, neg_rank = model(adj, eli).chunk(2)
            loss = model.recommendation_loss(pos_rank, neg_rank, node_id=eli.unique(), lambda_reg=a.reg)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
            steps += 1
            if a.time_limit and (dev.type == "cpu" or s % 16 == 15):  # a sync per 16 GPU steps
                sync(dev)
                if train_s + time.perf_counter() - t_ep >= a.time_limit:
                    stop = True
                    break
        sync(dev)
        train_s += time.perf_counter() - t_ep
        done_steps += steps
        epoch = done_steps / steps_per_epoch
        mean_loss = (loss_sum / max(steps, 1)).item()
        log(f"lightgcn: epoch {epoch:.2f}, loss {mean_loss:.4f}, {train_s:.1f} s training")
        if a.time_limit and train_s >= a.time_limit:
            stop = True
        if stop or ep == a.epochs or (a.eval_every and ep % a.eval_every == 0):
            evaluate(epoch, train_s, mean_loss)
            last_eval = epoch
        if stop:
            break
    if last_eval < 0:
        evaluate(done_steps / steps_per_epoch, train_s, None)


# --------------------------------------------------------------------------------------- selftest

def selftest():
    dev = torch.device("cpu")
    fails = []

    def check(ok, what):
        if not ok:
            fails.append(what)
        log(f"selftest: {'ok  ' if ok else 'FAIL'} {what}")

    # 1. neighbour sums: MessagePassing, CSR and COO against a loop (with duplicate neighbours)
    n, npins, T, d = 40, 25, 6, 8
    pin, board, w = make_graph(n, npins, T, seed=5)
    w = w * (1 + torch.arange(n * T, dtype=torch.float32).reshape(n, T) % 3)  # unequal weights
    check(bool((pin < npins).all() and (board >= npins).all() and (board < n).all()), "graph index ranges")
    check(any(len(set(r)) < T for r in pin.tolist()), "graph has duplicate pin neighbours (coalesce path exercised)")
    m = torch.randn(n, d, generator=torch.Generator().manual_seed(9))
    ref_p, ref_b = torch.zeros(n, d), torch.zeros(n, d)
    for u in range(n):
        for j in range(T):
            ref_p[u] += w[u, j] * m[pin[u, j]]
            ref_b[u] += w[u, j] * m[board[u, j]]
    aggs = Aggregators(pin, board, w, dev, ["mp", "csr", "coo"])
    for name, fn in aggs.fns.items():
        p, b = fn(m)
        err = max((p - ref_p).abs().max().item(), (b - ref_b).abs().max().item())
        check(err < 1e-5, f"aggregation {name} vs loop: max abs err {err:.2e}")

    # 2. whole inference: the variants agree, against a dense-adjacency version; rows unit norm
    Kl = 2
    P = make_params(d, Kl, dev, seed=3)
    h0 = torch.randn(n, d, generator=torch.Generator().manual_seed(4))
    Ap, Ab = torch.zeros(n, n), torch.zeros(n, n)
    for u in range(n):
        for j in range(T):
            Ap[u, pin[u, j]] += w[u, j]
            Ab[u, board[u, j]] += w[u, j]
    ref = infer(h0, P, lambda mm: (Ap @ mm, Ab @ mm))
    for name, fn in aggs.fns.items():
        err = (infer(h0, P, fn) - ref).abs().max().item()
        check(err < 1e-5, f"inference {name} vs dense adjacency: max abs err {err:.2e}")
    nrm = ref.norm(dim=1)
    check(bool(((nrm - 1).abs() < 1e-5).all()), "inference rows have unit norm")

    # 3. ranking metrics on a hand-made example, k = 3
    #   user 0: scores descending over items 0..5, train {0}, test {1, 3}: top3 = 1,2,3 -> hits at ranks 1,3
    #   user 1: scores ascending, train {5}, test {0}: top3 = 4,3,2 -> no hit
    #   user 2: no test items -> not counted
    #   user 3: scores descending, no train, test {0..4}: top3 = 0,1,2 all hits, recall 3/5, ndcg 1
    desc = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    S = torch.stack([desc, desc.flip(0), desc, desc])
    tr = (torch.tensor([0, 1, 2]), torch.tensor([0, 5, 3]))
    te = (torch.tensor([0, 0, 1, 3, 3, 3, 3, 3]), torch.tensor([1, 3, 0, 0, 1, 2, 3, 4]))
    for bs in (4, 1, 3):  # the result must not depend on the user batch size
        rk = Ranker(4, 6, tr, te, dev, k=3, batch=bs)
        recall, ndcg, cnt = rk.evaluate(lambda lo, hi: S[lo:hi])
        want_r = (1.0 + 0.0 + 3 / 5) / 3
        want_n = ((1 / math.log2(2) + 1 / math.log2(4)) / (1 / math.log2(2) + 1 / math.log2(3)) + 0.0 + 1.0) / 3
        check(cnt == 3 and abs(recall - want_r) < 1e-9 and abs(ndcg - want_n) < 1e-9,
              f"metrics batch {bs}: recall {recall:.6f} (want {want_r:.6f}), ndcg {ndcg:.6f} (want {want_n:.6f}),"
              f" users {cnt} (want 3)")
    # a train item with the top score must never be ranked: all-train except one test item -> recall 1
    rk = Ranker(1, 30, (torch.zeros(29, dtype=torch.long), torch.arange(1, 30)),
                (torch.zeros(1, dtype=torch.long), torch.tensor([0])), dev, k=20)
    recall, ndcg, _ = rk.evaluate(lambda lo, hi: torch.linspace(0, 1, 30).unsqueeze(0))
    check(abs(recall - 1) < 1e-12 and abs(ndcg - 1) < 1e-12, f"train items masked: recall {recall}, ndcg {ndcg}")

    # 4. split reader and subsample on a tiny file
    import tempfile
    with tempfile.TemporaryDirectory() as td:
        with open(os.path.join(td, "train.txt"), "w") as f:
            f.write("0 0 1 2\n1 3\n2 4 5\n")
        with open(os.path.join(td, "test.txt"), "w") as f:
            f.write("0 6\n1\n2 1 3\n")
        nu, ni, (a_u, a_i), (b_u, b_i) = load_split(td, 1.0, 0)
        check(nu == 3 and ni == 7 and a_u.tolist() == [0, 0, 0, 1, 2, 2] and a_i.tolist() == [0, 1, 2, 3, 4, 5]
              and b_u.tolist() == [0, 2, 2] and b_i.tolist() == [6, 1, 3], "split reader")
        nu2, ni2, (c_u, _), _ = load_split(td, 0.5, 1)
        check(ni2 == 7 and nu2 <= 3 and (c_u.numel() == 0 or int(c_u.max()) < nu2), "subsample renumbers users")

    if fails:
        log(f"selftest: {len(fails)} check(s) failed")
        emit({"bench": "peer_pyg_selftest", "ok": False, "failed": fails, **env_info(dev)})
        sys.exit(1)
    emit({"bench": "peer_pyg_selftest", "ok": True, **env_info(dev)})


# ------------------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    default_dev = "cuda" if torch.cuda.is_available() else "cpu"

    def common(p):
        p.add_argument("--device", choices=["cuda", "cpu"], default=default_dev)
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--tf32", type=int, choices=[0, 1], default=0,
                       help="1: let fp32 matmuls use TF32 (default 0: IEEE fp32, like sagepipe)")

    p = sub.add_parser("layer", help="layer-wise PinSage inference, bench_infer shapes")
    common(p)
    p.add_argument("--nodes", type=int, default=200000)
    p.add_argument("--pins", type=int, default=150000)
    p.add_argument("--nbrs", type=int, default=50, help="pin neighbours and board neighbours per node")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--impls", default="mp,csr", help="comma list of mp (MessagePassing), csr, coo (torch.sparse.mm)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)

    p = sub.add_parser("lightgcn", help="PyG LightGCN, BPR, full-ranking recall/ndcg@20")
    common(p)
    p.add_argument("--data", required=True, help="folder with train.txt and test.txt")
    p.add_argument("--emb-dim", type=int, default=64)
    p.add_argument("--num-layers", type=int, default=3)
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--reg", type=float, default=1e-4, help="lambda of PyG's BPRLoss L2 term")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=0, help="evaluate every E epochs (0: at the end only)")
    p.add_argument("--time-limit", type=float, default=0, help="stop training after S seconds of it (0: none)")
    p.add_argument("--eval-batch", type=int, default=4096, help="users per scoring block")
    p.add_argument("--subsample", type=float, default=1.0, help="keep this fraction of users (random)")
    p.add_argument("--adj", choices=["edge_index", "csr"], default="edge_index",
                   help="graph given to LightGCN as edge_index (PyG example) or a torch.sparse CSR matrix")

    sub.add_parser("selftest", help="CPU checks of the aggregations and the metrics (exit 1 on failure)")
    a = ap.parse_args()
    if a.mode == "selftest":
        torch.set_float32_matmul_precision("highest")
        return selftest()
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("peer_pyg: --device cuda but torch.cuda.is_available() is False")
    torch.set_float32_matmul_precision("high" if a.tf32 else "highest")
    dev = torch.device(a.device)
    if a.mode == "layer":
        run_layer(a, dev)
    else:
        if not 0 < a.subsample <= 1:
            sys.exit("peer_pyg lightgcn: --subsample must be in (0, 1]")
        run_lightgcn(a, dev)


if __name__ == "__main__":
    main()
