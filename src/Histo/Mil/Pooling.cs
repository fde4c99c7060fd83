using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Histo.Mil;

/// <summary>
/// Mean or max pooling of instance embeddings, then a linear classifier: the simplest permutation-invariant
/// baselines (Wang et al., "Revisiting multiple instance neural networks", Pattern Recognition 2018).
/// Instances first pass through fc (Linear + ReLU + dropout), as in CLAM.
/// </summary>
public sealed class PoolingMil : MilModel
{
    readonly Sequential fc;
    readonly Linear classifier;
    readonly bool _max;
    readonly int _inputDim;

    public PoolingMil(int inputDim, int classes, bool max, int hidden = 512, double dropout = 0.25) : base(max ? "max" : "mean")
    {
        _max = max;
        _inputDim = inputDim;
        fc = Sequential(("0", Linear(inputDim, hidden)), ("1", ReLU()), ("2", Dropout(dropout)));
        classifier = Linear(hidden, classes);
        RegisterComponents();
    }

    public override MilOutput Forward(Tensor bag, long? label = null)
    {
        CheckBag(bag, _inputDim);
        using var scope = NewDisposeScope();
        var h = fc.forward(bag);                                   // [N, L]
        Tensor z, scores;
        if (_max)
        {
            z = h.max(0).values;                                    // [L]
            // Instance score: the share of pooled dimensions where the instance attains the maximum (ties
            // count for every tied instance, so the score follows the instance, not its position).
            var attains = h.eq(z.unsqueeze(0)).to_type(ScalarType.Float32); // [N, L]
            scores = attains.sum(1) / attains.sum().clamp_min(Models.KeptScalars.One);
        }
        else
        {
            z = h.mean([0]);                                        // [L]
            using TorchSharp.Scalar share = (1.0 / bag.shape[0]).ToScalar();
            scores = full(bag.shape[0], share);
        }
        var logits = classifier.forward(z);                          // [C]
        return new MilOutput(logits.MoveToOuterDisposeScope(), scores.MoveToOuterDisposeScope(), null);
    }
}
