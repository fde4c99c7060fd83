using Histo.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Histo.Mil;

/// <summary>
/// Attention-based MIL (Ilse, Tomczak, Welling, "Attention-based Deep Multiple Instance Learning", ICML
/// 2018). a_k = softmax_k(w^T tanh(V h_k)), or gated: a_k = softmax_k(w^T [tanh(V h_k) * sigmoid(U h_k)]);
/// z = sum_k a_k h_k; logits = W z. The paper's sizes L = 500, D = 128.
/// Bags of more than <see cref="DefaultChunk"/> instances stream: z is accumulated chunk by chunk with a running
/// softmax (max m, sum S, weighted sum Z rescaled by exp(m_old - m_new) as m grows), keeping only the scores [N], and
/// training recomputes each chunk in <see cref="Backward"/> (activation recomputation), so memory is a chunk's
/// activations, not the bag's: at 400,000 x 1,024 one graph over the bag needs gigabytes (bench mil).
/// </summary>
public sealed class AttentionMil : MilModel
{
    /// <summary>Paper's embedding size L.</summary>
    public const int PaperHidden = 500;
    /// <summary>Paper's attention size D.</summary>
    public const int PaperAttention = 128;
    /// <summary>Instances per chunk of a streamed bag (and the size above which a bag streams).</summary>
    public const int DefaultChunk = 16_384;

    readonly Sequential feature;
    readonly Linear attention_V, attention_w;
    readonly Linear? attention_U;
    readonly Linear classifier;
    readonly int _inputDim, _chunk;
    readonly double _dropout;
    // Tensor additions take this kept Scalar, not one made on the fly: BagLoader's reader thread allocates while these
    // run (README, Platform notes).
    static readonly Scalar One = KeptScalars.One;
    Streamed? _streamed;

    public bool Gated { get; }

    /// <param name="chunk">Instances per chunk; bags above it stream (tests use a small one).</param>
    public AttentionMil(int inputDim, int classes, bool gated, int hidden = PaperHidden, int attentionDim = PaperAttention,
        double dropout = 0.25, int chunk = DefaultChunk)
        : base(gated ? "gated-abmil" : "abmil")
    {
        Gated = gated;
        _inputDim = inputDim;
        _chunk = chunk;
        _dropout = dropout;
        feature = Sequential(("0", Linear(inputDim, hidden)), ("1", ReLU()), ("2", Dropout(dropout)));
        attention_V = Linear(hidden, attentionDim);
        if (gated) attention_U = Linear(hidden, attentionDim);
        attention_w = Linear(attentionDim, 1);
        classifier = Linear(hidden, classes);
        RegisterComponents();
    }

    public override MilOutput Forward(Tensor bag, long? label = null)
    {
        CheckBag(bag, _inputDim);
        _streamed = null;
        if (bag.shape[0] > _chunk) return StreamedForward(bag);
        using var scope = NewDisposeScope();
        var h = feature.forward(bag);                               // [N, L]
        var a = functional.softmax(Score(h), 0);                    // [N] attention over the whole bag
        var z = a.matmul(h);                                        // [L] = sum_k a_k h_k
        var logits = classifier.forward(z);                         // [C]
        return new MilOutput(logits.MoveToOuterDisposeScope(), a.MoveToOuterDisposeScope(), null);
    }

    /// <summary>Unnormalised attention scores w^T tanh(V h) [* sigmoid(U h)], [N].</summary>
    Tensor Score(Tensor h)
    {
        var v = tanh(attention_V.forward(h));
        if (attention_U is not null) v = v * sigmoid(attention_U.forward(h));
        return attention_w.forward(v).squeeze(1);
    }

    /// <summary>What <see cref="Backward"/> needs of a streamed training forward pass (tensors of the step's scope).</summary>
    sealed record Streamed(Tensor Bag, Tensor Attention, Tensor Z, Tensor ZLeaf, long Seed);

    /// <summary>
    /// h for one chunk of a streamed bag. Dropout masks come from a generator seeded per chunk (the pass's seed + chunk
    /// index), so recomputing the chunk in the backward pass draws the same mask.
    /// </summary>
    Tensor ChunkHidden(Tensor bag, int chunk, long seed, Tensor? keepInverse)
    {
        long start = (long)chunk * _chunk;
        var x = bag.narrow(0, start, Math.Min(_chunk, bag.shape[0] - start));
        var h = functional.relu(((Linear)feature.children().First()).forward(x));
        if (keepInverse is null) return h;
        using var generator = new Generator((ulong)(seed + chunk));
        var mask = empty_like(h).bernoulli_(1 - _dropout, generator);
        return h * mask * keepInverse;
    }

    int ChunkCount(Tensor bag) => (int)((bag.shape[0] + _chunk - 1) / _chunk);

    /// <summary>Dropout's 1 / (1 - p) while training (a tensor: no Scalar made on the fly); null when dropout is off.</summary>
    Tensor? KeepInverse() => training && _dropout > 0 ? tensor(1 / (1 - _dropout)) : null;

    MilOutput StreamedForward(Tensor bag)
    {
        using var scope = NewDisposeScope();
        bool recompute = training && is_grad_enabled();
        // One draw of the global generator per pass: seeded runs stay reproducible, and each step gets new masks.
        long seed = randint(0, int.MaxValue, [1], dtype: ScalarType.Int64).item<long>();
        var keepInverse = KeepInverse();
        int chunks = ChunkCount(bag);
        var scores = new List<Tensor>();
        Tensor? max = null, sum = null, weighted = null;
        using (no_grad())
            for (int c = 0; c < chunks; c++)
            {
                using var chunkScope = NewDisposeScope();
                var h = ChunkHidden(bag, c, seed, keepInverse);
                var s = Score(h);
                var newMax = max is null ? s.max() : maximum(max, s.max());
                var e = exp(s.sub(newMax));
                if (max is null) (weighted, sum) = (e.matmul(h), e.sum());
                else
                {
                    var rescale = exp(max.sub(newMax));
                    (weighted, sum) = ((weighted! * rescale).add(e.matmul(h), One), (sum! * rescale).add(e.sum(), One));
                }
                max = newMax.MoveToOuterDisposeScope();
                (weighted, sum) = (weighted.MoveToOuterDisposeScope(), sum.MoveToOuterDisposeScope());
                scores.Add(s.MoveToOuterDisposeScope());
            }
        var a = exp(cat(scores, 0).sub(max!)) / sum!;            // softmax over the whole bag
        var z = weighted! / sum!;
        Tensor logits;
        if (recompute)
        {
            var zLeaf = z.detach().requires_grad_(true);
            logits = classifier.forward(zLeaf);
            _streamed = new Streamed(bag, a, z, zLeaf.MoveToOuterDisposeScope(), seed);
            z.MoveToOuterDisposeScope();
        }
        else logits = classifier.forward(z);
        return new MilOutput(logits.MoveToOuterDisposeScope(), a.MoveToOuterDisposeScope(), null);
    }

    /// <summary>
    /// Backpropagates the loss, then, after a streamed forward pass, through the attention pooling chunk by chunk: with
    /// g = dL/dz, dL/dh_k = a_k g (through z) and dL/ds_k = a_k (h_k . g - z . g) (through the softmax), each chunk's
    /// h and s are recomputed with a graph and l_c = sum_k a_k (h_k . g) + sum_k (dL/ds_k) s_k, its coefficients held
    /// constant, is backpropagated: the sum over chunks of d l_c / d theta is dL/d theta exactly.
    /// </summary>
    public override void Backward(Tensor loss)
    {
        var streamed = _streamed;
        _streamed = null;
        loss.backward();
        if (streamed is null) return;
        var g = streamed.ZLeaf.grad ?? throw new InvalidOperationException("the loss does not depend on the streamed bag's logits");
        using var zg = streamed.Z.dot(g);
        using var keepInverse = KeepInverse();
        int chunks = ChunkCount(streamed.Bag);
        for (int c = 0; c < chunks; c++)
        {
            using var scope = NewDisposeScope();
            var h = ChunkHidden(streamed.Bag, c, streamed.Seed, keepInverse);
            var s = Score(h);
            var a = streamed.Attention.narrow(0, (long)c * _chunk, h.shape[0]);
            var hg = h.matmul(g);
            var ds = a * hg.detach().sub(zg);
            a.dot(hg).add(ds.dot(s), One).backward();
        }
    }
}
