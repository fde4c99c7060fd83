using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Histo.Mil;

/// <summary>
/// DSMIL (Li, Li, Eliceiri, "Dual-stream multiple instance learning network for whole slide image
/// classification with self-supervised contrastive learning", CVPR 2021). Instance stream: c = W_i h_k,
/// the critical instance m_c = argmax_k c_k for each class. Bag stream: queries q_k = q(h_k), attention
/// A_k,c = softmax_k(q_k . q_{m_c} / sqrt(d)), bag embedding b_c = sum_k A_k,c v(h_k), bag logit from a
/// Conv1d over the class embeddings. Output = mean of the max instance logit and the bag logit (the paper's
/// inference rule); instance scores = attention for the predicted class.
/// </summary>
public sealed class DsMil : MilModel
{
    const int QueryDim = 128;

    readonly Linear i_classifier;
    readonly Sequential q, v;
    readonly Conv1d fcc;
    readonly int _inputDim, _classes;

    public DsMil(int inputDim, int classes, double dropout = 0.0) : base("dsmil")
    {
        _inputDim = inputDim;
        _classes = classes;
        i_classifier = Linear(inputDim, classes);
        q = Sequential(("0", Linear(inputDim, QueryDim)), ("1", ReLU()), ("2", Linear(QueryDim, QueryDim)), ("3", Tanh()));
        v = Sequential(("0", Dropout(dropout)), ("1", Linear(inputDim, inputDim)));
        fcc = Conv1d(classes, classes, inputDim);
        RegisterComponents();
    }

    public override MilOutput Forward(Tensor bag, long? label = null)
    {
        CheckBag(bag, _inputDim);
        using var scope = NewDisposeScope();
        var instanceLogits = i_classifier.forward(bag);                       // [N, C]
        var critical = instanceLogits.argmax(0);                              // [C] index of each class's critical instance
        var queries = q.forward(bag);                                         // [N, 128]
        var criticalQueries = queries.index_select(0, critical);              // [C, 128]
        var a = functional.softmax(queries.matmul(criticalQueries.T) / Math.Sqrt(QueryDim), 0); // [N, C]
        var b = a.T.matmul(v.forward(bag));                                   // [C, D]
        var bagLogits = fcc.forward(b.unsqueeze(0)).reshape(_classes);        // [C]
        var maxInstance = instanceLogits.max(0).values;                       // [C]
        var logits = (bagLogits + maxInstance) / 2;
        var predicted = logits.argmax();
        var scores = a.index_select(1, predicted.reshape(1)).squeeze(1);      // [N]
        return new MilOutput(logits.MoveToOuterDisposeScope(), scores.MoveToOuterDisposeScope(), null);
    }
}
