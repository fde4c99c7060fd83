using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Histo.Mil;

/// <summary>
/// DSMIL (Li, Li, Eliceiri, "Dual-stream multiple instance learning network for whole slide image
/// classification with self-supervised contrastive learning", CVPR 2021), as the authors' code
/// (binli123/dsmil-wsi, dsmil.py and train_tcga.py at its 2024 revision) builds and trains it by default.
/// Instance stream: c = W_i h_k (i_classifier), the critical instance m_c = argmax_k c_k for each class, and the
/// max-instance logits max_k c_k. Bag stream: queries q_k = q(h_k) with q = Linear-ReLU-Linear-Tanh
/// (non_linearity = 1), values v(h_k) = h_k (passing_v = False: nn.Identity), attention
/// A_k,c = softmax_k(q_k . q_{m_c} / sqrt(128)), bag embedding b_c = sum_k A_k,c v(h_k), bag logits from a Conv1d
/// over the class embeddings (fcc). Weights start orthogonal with zero biases (train_tcga.py's init).
/// Training: loss = 0.5 L(bag logits) + 0.5 L(max-instance logits), exposed as <see cref="MilOutput.StreamLogits"/>
/// [bag; max-instance] for the trainer to combine. Prediction: the paper's rule, the mean of the two streams'
/// scores c(B) = (max_k c_k + bag logit) / 2, in <see cref="MilOutput.Logits"/> (the authors' test scripts
/// read the bag stream alone unless --average; the paper averages). Instance scores: attention for the
/// predicted class. The loss L is the head's (cross-entropy for softmax, where the authors use BCE on one-hot
/// labels).
/// </summary>
public sealed class DsMil : MilModel
{
    const int QueryDim = 128;

    readonly Linear i_classifier;
    readonly Sequential q;
    readonly Sequential? v;
    readonly Conv1d fcc;
    readonly int _inputDim, _classes;

    /// <param name="inputDim">Instance feature size.</param>
    /// <param name="classes">Outputs (classes for softmax; the head's model outputs otherwise).</param>
    /// <param name="passingV">dsmil.py's passing_v: values through Dropout(dropoutV)-Linear-ReLU instead of the identity.</param>
    /// <param name="dropoutV">dsmil.py's dropout_v (train_tcga.py's dropout_node), used with <paramref name="passingV"/>.</param>
    public DsMil(int inputDim, int classes, bool passingV = false, double dropoutV = 0.0) : base("dsmil")
    {
        _inputDim = inputDim;
        _classes = classes;
        i_classifier = Linear(inputDim, classes);
        q = Sequential(("0", Linear(inputDim, QueryDim)), ("1", ReLU()), ("2", Linear(QueryDim, QueryDim)), ("3", Tanh()));
        if (passingV) v = Sequential(("0", Dropout(dropoutV)), ("1", Linear(inputDim, inputDim)), ("2", ReLU()));
        fcc = Conv1d(classes, classes, inputDim);
        RegisterComponents();
        using var _ = no_grad();
        foreach (var (name, p) in named_parameters())
        {
            if (name.EndsWith(".bias") || name == "bias") p.zero_();
            else init.orthogonal_(p);
        }
    }

    public override MilOutput Forward(Tensor bag, long? label = null)
    {
        CheckBag(bag, _inputDim);
        using var scope = NewDisposeScope();
        var instanceLogits = i_classifier.forward(bag);                       // [N, C]
        var critical = instanceLogits.argmax(0);                              // [C] index of each class's critical instance
        var queries = q.forward(bag);                                         // [N, 128]
        var criticalQueries = q.forward(bag.index_select(0, critical));       // [C, 128]
        var a = functional.softmax(queries.matmul(criticalQueries.T).div(Models.KeptScalars.Of(Math.Sqrt(QueryDim))), 0); // [N, C]
        var values = v is null ? bag : v.forward(bag);                        // [N, D]
        var b = a.T.matmul(values);                                           // [C, D]
        var bagLogits = fcc.forward(b.unsqueeze(0)).reshape(_classes);        // [C]
        var maxInstance = instanceLogits.max(0).values;                       // [C]
        var streams = stack([bagLogits, maxInstance]);                        // [2, C]
        var logits = streams.mean([0]);                                       // [C] = (bag + max) / 2
        var predicted = logits.argmax();
        var scores = a.index_select(1, predicted.reshape(1)).squeeze(1);      // [N]
        return new MilOutput(logits.MoveToOuterDisposeScope(), scores.MoveToOuterDisposeScope(), null, streams.MoveToOuterDisposeScope());
    }
}
