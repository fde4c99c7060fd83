using static TorchSharp.torch;

namespace Histo.Mil;

/// <summary>Which head a slide-level task uses.</summary>
public enum HeadKind { Softmax, Coral, Corn }

/// <summary>
/// Turns a MIL model's logits into a loss, class probabilities and a prediction. Softmax for subtypes; for
/// ordinal grades CORAL and CORN, which keep the order of the K grades by predicting K-1 binary "grade &gt; k"
/// tasks.
/// </summary>
/// <remarks>
/// <see cref="Loss"/> is one bag's unweighted loss. Class balance is not a head's business: the trainer scales
/// each bag's loss by its class weight n / (K n_c), the same way for every head (see
/// <see cref="MilTraining.ClassWeights"/>).
/// </remarks>
public abstract class MilHead : nn.Module
{
    protected MilHead(string name, int classes) : base(name) { Classes = classes; }

    public int Classes { get; }
    /// <summary>Logits the MIL model must produce for this head.</summary>
    public abstract int ModelOutputs { get; }
    /// <summary>Loss of one bag's model logits against its class (unweighted).</summary>
    public abstract Tensor Loss(Tensor modelLogits, long label);
    /// <summary>Class probabilities [K].</summary>
    public abstract Tensor Probabilities(Tensor modelLogits);

    /// <summary>
    /// What the decision rule reads, as numbers that fold models can be averaged on: class probabilities [K]
    /// for softmax; P(y &gt; k) for k = 0..K-2 for the ordinal heads.
    /// </summary>
    public virtual double[] DecisionScores(Tensor modelLogits)
    {
        using var p = Probabilities(modelLogits);
        using var d = p.to_type(ScalarType.Float64);
        return d.data<double>().ToArray();
    }

    /// <summary>The class that <paramref name="scores"/> (from <see cref="DecisionScores"/>, or their mean over fold models)
    /// decide.</summary>
    public abstract int Decide(double[] scores);

    /// <summary>Class probabilities [K] from decision scores (or their mean over fold models).</summary>
    public abstract double[] ProbabilitiesFromScores(double[] scores);

    /// <summary>The predicted class: argmax for softmax; for ordinal heads the number of "y &gt; k" tasks above 0.5.</summary>
    public int Predict(Tensor modelLogits) => Decide(DecisionScores(modelLogits));

    /// <summary>
    /// Whether <see cref="Energy"/> is defined: the energy score (Liu et al., NeurIPS 2020) is -log of the softmax
    /// normaliser, so it needs logits whose common offset the model sets. An ordinal head's task logits only set
    /// each "y &gt; k" odds (sigmoid(g) = softmax([0, g]), the 0 an arbitrary reference), so -logsumexp of them
    /// measures the predicted grade, not typicality; and the energy of the normalised log class probabilities is
    /// -log sum_k p_k = 0 for every slide. Ordinal heads report no energy (NaN) and no flag.
    /// </summary>
    public virtual bool HasEnergy => true;

    /// <summary>E = -T logsumexp(logits / T), T = 1; NaN where <see cref="HasEnergy"/> is false.</summary>
    public virtual double Energy(Tensor modelLogits)
    {
        using var lse = modelLogits.logsumexp(0);
        return -lse.item<float>();
    }

    public static MilHead Create(HeadKind kind, int classes) => kind switch
    {
        HeadKind.Softmax => new SoftmaxHead(classes),
        HeadKind.Coral => new CoralHead(classes),
        HeadKind.Corn => new CornHead(classes),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };
}

/// <summary>The ordinal heads' shared rule: P(y &gt; k) decides by counting, and gives class probabilities by differences.</summary>
public abstract class OrdinalHead(string name, int classes) : MilHead(name, classes)
{
    /// <summary>P(y &gt; k) for k = 0..K-2 [K-1].</summary>
    public abstract Tensor Exceedance(Tensor modelLogits);

    /// <summary>Task indices 0, 1, ..., n-1 as int64, built from an array: arange(n) converts its start and step to Scalars
    /// on the fly.</summary>
    protected static Tensor TaskIndices(int n) => tensor(Enumerable.Range(0, n).Select(k => (long)k).ToArray());

    public override Tensor Probabilities(Tensor modelLogits)
    {
        using var e = Exceedance(modelLogits);
        return CoralHead.OrdinalProbabilities(e);
    }

    public override double[] DecisionScores(Tensor modelLogits)
    {
        using var e = Exceedance(modelLogits);
        using var d = e.to_type(ScalarType.Float64);
        return d.data<double>().ToArray();
    }

    /// <summary>The number of "y &gt; k" probabilities above 0.5 (CORAL's and CORN's rule; for fold ensembles, of the mean P(y &gt;
    /// k)).</summary>
    public override int Decide(double[] scores) => scores.Count(p => p > 0.5);

    public override double[] ProbabilitiesFromScores(double[] scores)
    {
        using var e = tensor(scores.Select(v => (float)v).ToArray());
        using var p = CoralHead.OrdinalProbabilities(e);
        using var d = p.to_type(ScalarType.Float64);
        return d.data<double>().ToArray();
    }

    public override bool HasEnergy => false;

    public override double Energy(Tensor modelLogits) => double.NaN;
}

/// <summary>Cross-entropy over K classes.</summary>
public sealed class SoftmaxHead(int classes) : MilHead("softmax", classes)
{
    public override int ModelOutputs => Classes;

    public override Tensor Loss(Tensor modelLogits, long label)
    {
        using var target = tensor(new[] { label });
        return nn.functional.cross_entropy(modelLogits.unsqueeze(0), target);
    }

    public override Tensor Probabilities(Tensor modelLogits) => nn.functional.softmax(modelLogits, 0);

    public override int Decide(double[] scores) => Array.IndexOf(scores, scores.Max());

    public override double[] ProbabilitiesFromScores(double[] scores) => scores.ToArray();
}

/// <summary>
/// CORAL (Cao, Mirjalili, Raschka, "Rank consistent ordinal regression for neural networks", Pattern
/// Recognition Letters 2020): one shared score s = w^T phi (the model's single output) and K-1 biases,
/// g_k = s + b_k; targets y_k = [y &gt; k]; loss = -sum_k [y_k log s(g_k) + (1 - y_k) log(1 - s(g_k))];
/// P(y &gt; k) = s(g_k), prediction = number of k with s(g_k) &gt; 0.5.
/// </summary>
public sealed class CoralHead : OrdinalHead
{
    readonly TorchSharp.Modules.Parameter bias;

    public CoralHead(int classes) : base("coral", classes)
    {
        // Initialised decreasing so the thresholds start ordered.
        var thresholds = Enumerable.Range(1, classes - 1).Select(k => (float)(classes - k) / (classes - 1)).ToArray();
        bias = new TorchSharp.Modules.Parameter(tensor(thresholds));
        RegisterComponents();
    }

    public override int ModelOutputs => 1;

    public Tensor TaskLogits(Tensor modelLogits) => modelLogits.reshape(1).add(bias, Models.KeptScalars.One);  // [K-1]

    /// <summary>
    /// Sum over the K-1 tasks of the binary cross-entropy. With class balance on, the trainer scales this by the
    /// bag's class weight like every other head's loss: the thresholds b_k then fit a cohort with equal grade
    /// shares, which is what balanced accuracy asks for (this replaces an earlier exemption of CORAL from the
    /// weights, measured once on one 60-slide cohort with weights that did nothing for softmax; see
    /// <c>Histo.Bench mil-balance</c> for the comparison over seeds).
    /// </summary>
    public override Tensor Loss(Tensor modelLogits, long label)
    {
        using var scope = NewDisposeScope();
        var g = TaskLogits(modelLogits);
        var targets = TaskIndices(Classes - 1).lt(tensor(label)).to_type(ScalarType.Float32);  // y_k = [y > k]
        var loss = nn.functional.binary_cross_entropy_with_logits(g, targets, reduction: nn.Reduction.Sum);
        return loss.MoveToOuterDisposeScope();
    }

    public override Tensor Exceedance(Tensor modelLogits)
    {
        using var g = TaskLogits(modelLogits);
        return sigmoid(g);
    }

    /// <summary>From P(y &gt; k) for k = 0..K-2 to P(y = k): differences of the cumulative curve (clamped at 0).</summary>
    internal static Tensor OrdinalProbabilities(Tensor greater)
    {
        using var scope = NewDisposeScope();
        var cumulative = cat([ones(1), greater, zeros(1)]);                      // P(y > k-1) for k = 0..K
        var p = (cumulative.narrow(0, 0, cumulative.shape[0] - 1) - cumulative.narrow(0, 1, cumulative.shape[0] - 1))
            .clamp_min(Models.KeptScalars.Zero);
        return (p / p.sum().clamp_min(Models.KeptScalars.Of(1e-12))).MoveToOuterDisposeScope();
    }

}

/// <summary>
/// CORN (Shi, Cao, Raschka, "Deep neural networks for rank-consistent ordinal regression based on conditional
/// probabilities", Pattern Analysis and Applications 2023): K-1 task logits; task k is trained only on bags
/// with y &gt; k-1, label [y &gt; k]; P(y &gt; k) = prod_{j &lt;= k} s(g_j); prediction = number of cumulative
/// products &gt; 0.5.
/// </summary>
public sealed class CornHead(int classes) : OrdinalHead("corn", classes)
{
    public override int ModelOutputs => Classes - 1;

    public override Tensor Loss(Tensor modelLogits, long label)
    {
        using var scope = NewDisposeScope();
        // Tasks k = 0..min(label, K-2) see this bag (its y > k-1); their targets are [y > k].
        int tasks = (int)Math.Min(label + 1, Classes - 1);
        var g = modelLogits.narrow(0, 0, tasks);
        var targets = TaskIndices(tasks).lt(tensor(label)).to_type(ScalarType.Float32);
        var loss = nn.functional.binary_cross_entropy_with_logits(g, targets, reduction: nn.Reduction.Sum);
        return loss.MoveToOuterDisposeScope();
    }

    public override Tensor Exceedance(Tensor modelLogits)
    {
        using var s = sigmoid(modelLogits);
        return s.cumprod(0);
    }
}
