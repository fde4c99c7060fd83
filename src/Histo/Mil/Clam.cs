using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Histo.Mil;

/// <summary>
/// CLAM-SB (Lu et al., "Data-efficient and weakly supervised computational pathology on whole-slide
/// images", Nat Biomed Eng 2021), single attention branch, with CLAM's module names. fc 1024->512 + ReLU +
/// dropout 0.25 (input size follows the features); gated attention a = softmax(w^T [tanh(V h) * sigmoid(U h)])
/// with D = 256; bag logits from z = sum_k a_k h_k. Instance-level clustering: in the true class's branch the
/// top-B attended patches get pseudo-label 1 and the bottom-B get 0; for subtyping, the top-B of every other
/// class's branch get 0 (B = 8). Auxiliary loss = mean instance cross-entropy; the trainer combines
/// 0.7 * bag CE + 0.3 * this. The instance branches are one per class, so CLAM-SB takes the softmax head only
/// (<see cref="MilTrainingOptions.Validate"/> refuses CORAL and CORN). <see cref="MilRegistry"/> sets
/// <c>subtyping</c> as CLAM's main.py does: off for a two-class task (task_1_tumor_vs_normal), on for more
/// classes (task_2_tumor_subtyping).
/// </summary>
public sealed class ClamSb : MilModel
{
    /// <summary>CLAM's k_sample: instances per side for the clustering loss.</summary>
    public const int InstancesPerSide = 8;
    /// <summary>CLAM's bag_weight: loss = BagWeight * bag CE + (1 - BagWeight) * instance loss.</summary>
    public const double BagWeight = 0.7;

    readonly Sequential fc;
    readonly Sequential attention_a, attention_b;
    readonly Linear attention_c, classifiers;
    readonly ModuleList<Linear> instance_classifiers;
    readonly int _inputDim, _classes;
    readonly bool _subtyping;

    /// <summary>Whether the out-of-class branches are trained (CLAM's <c>subtyping</c>).</summary>
    public bool Subtyping => _subtyping;

    public ClamSb(int inputDim, int classes, bool subtyping = true, int hidden = 512, int attentionDim = 256,
        double dropout = 0.25) : base("clam-sb")
    {
        _inputDim = inputDim;
        _classes = classes;
        _subtyping = subtyping;
        fc = Sequential(("0", Linear(inputDim, hidden)), ("1", ReLU()), ("2", Dropout(dropout)));
        attention_a = Sequential(("0", Linear(hidden, attentionDim)), ("1", Tanh()), ("2", Dropout(dropout)));
        attention_b = Sequential(("0", Linear(hidden, attentionDim)), ("1", Sigmoid()), ("2", Dropout(dropout)));
        attention_c = Linear(attentionDim, 1);
        classifiers = Linear(hidden, classes);
        instance_classifiers = new ModuleList<Linear>(Enumerable.Range(0, classes).Select(_ => Linear(hidden, 2)).ToArray());
        RegisterComponents();
    }

    public override MilOutput Forward(Tensor bag, long? label = null)
    {
        CheckBag(bag, _inputDim);
        using var scope = NewDisposeScope();
        var h = fc.forward(bag);                                                       // [N, 512]
        var scores = attention_c.forward(attention_a.forward(h) * attention_b.forward(h)).squeeze(1); // [N]
        var a = functional.softmax(scores, 0);                                          // [N]
        var logits = classifiers.forward(a.matmul(h));                                  // [C]
        Tensor? instanceLoss = label is { } y && is_grad_enabled() ? InstanceLoss(h, a, y) : null;
        return new MilOutput(logits.MoveToOuterDisposeScope(), a.MoveToOuterDisposeScope(), instanceLoss?.MoveToOuterDisposeScope());
    }

    /// <summary>Mean cross-entropy of the per-class instance classifiers on pseudo-labelled top/bottom instances.</summary>
    Tensor? InstanceLoss(Tensor h, Tensor attention, long label)
    {
        long n = h.shape[0];
        int k = (int)Math.Min(InstancesPerSide, n / 2);
        if (k < 1) return null;
        var order = attention.argsort(descending: true);
        var top = order.narrow(0, 0, k);
        var bottom = order.narrow(0, n - k, k);
        var losses = new List<Tensor>();
        for (int c = 0; c < _classes; c++)
        {
            var classifier = instance_classifiers[c];
            if (c == label)
            {
                var x = cat([h.index_select(0, top), h.index_select(0, bottom)], 0);  // [2k, 512]
                var targets = cat([ones(k, dtype: ScalarType.Int64), zeros(k, dtype: ScalarType.Int64)]);
                losses.Add(functional.cross_entropy(classifier.forward(x), targets));
            }
            else if (_subtyping)
            {
                // Out-of-class branch: the patches this class's branch attends to most are not of this class.
                losses.Add(functional.cross_entropy(classifier.forward(h.index_select(0, top)), zeros(k, dtype: ScalarType.Int64)));
            }
        }
        return stack(losses).mean();
    }
}
