using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Histo.Mil;

/// <summary>
/// Attention-based MIL (Ilse, Tomczak, Welling, "Attention-based Deep Multiple Instance Learning", ICML
/// 2018). a_k = softmax_k(w^T tanh(V h_k)), or gated: a_k = softmax_k(w^T [tanh(V h_k) * sigmoid(U h_k)]);
/// z = sum_k a_k h_k; logits = W z. The paper's sizes L = 500, D = 128. Attention is computed in chunks of
/// instances so bags of 100,000+ patches fit in memory (the softmax is taken over the whole bag).
/// </summary>
public sealed class AttentionMil : MilModel
{
    /// <summary>Paper's embedding size L.</summary>
    public const int PaperHidden = 500;
    /// <summary>Paper's attention size D.</summary>
    public const int PaperAttention = 128;
    const int Chunk = 16_384;

    readonly Sequential feature;
    readonly Linear attention_V, attention_w;
    readonly Linear? attention_U;
    readonly Linear classifier;
    readonly int _inputDim;

    public bool Gated { get; }

    public AttentionMil(int inputDim, int classes, bool gated, int hidden = PaperHidden, int attentionDim = PaperAttention, double dropout = 0.25)
        : base(gated ? "gated-abmil" : "abmil")
    {
        Gated = gated;
        _inputDim = inputDim;
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
        using var scope = NewDisposeScope();
        var (h, scoresRaw) = Embed(bag);                            // [N, L], [N]
        var a = functional.softmax(scoresRaw, 0);                   // [N] attention over the whole bag
        var z = a.matmul(h);                                        // [L] = sum_k a_k h_k
        var logits = classifier.forward(z);                         // [C]
        return new MilOutput(logits.MoveToOuterDisposeScope(), a.MoveToOuterDisposeScope(), null);
    }

    /// <summary>Instance embeddings h and unnormalised attention scores w^T tanh(V h) [* sigmoid(U h)].</summary>
    (Tensor H, Tensor Scores) Embed(Tensor bag)
    {
        var hs = new List<Tensor>();
        var ss = new List<Tensor>();
        for (long start = 0; start < bag.shape[0]; start += Chunk)
        {
            var x = bag.narrow(0, start, Math.Min(Chunk, bag.shape[0] - start));
            var h = feature.forward(x);
            var v = tanh(attention_V.forward(h));
            if (attention_U is not null) v = v * sigmoid(attention_U.forward(h));
            hs.Add(h);
            ss.Add(attention_w.forward(v).squeeze(1));
        }
        return hs.Count == 1 ? (hs[0], ss[0]) : (cat(hs, 0), cat(ss, 0));
    }
}
