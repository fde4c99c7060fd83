using Histo.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Histo.SelfSupervised;

/// <summary>
/// DINO's self-distillation loss (Caron et al., "Emerging Properties in Self-Supervised Vision Transformers",
/// ICCV 2021), as main_dino.py's DINOLoss. Teacher targets P_t = softmax((g_t(x) - c) / tau_t), detached
/// (centering and sharpening); student P_s = softmax(g_s(x) / tau_s); loss = mean over pairs of views
/// (teacher view i, student view j, i != j) of -sum P_t log P_s. The centre c is an EMA (momentum 0.9) of
/// the batch mean of the teacher's raw outputs, updated after the loss.
/// </summary>
public sealed class DinoLoss : nn.Module
{
    /// <summary>Student temperature (paper: 0.1).</summary>
    public const double StudentTemperature = 0.1;
    /// <summary>Centre EMA momentum (paper: 0.9).</summary>
    public const double CenterMomentum = 0.9;

    readonly Tensor center;
    readonly int _globalCrops;
    // Numbers meeting tensors as kept-alive Scalars: an implicit conversion's temporary can be freed by the finalizer
    // while libtorch reads it, when another thread allocates (README, Platform notes).
    static readonly Scalar StudentTemperatureScalar = StudentTemperature.ToScalar(), CenterMomentumScalar = CenterMomentum.ToScalar(),
        CenterBlend = (1 - CenterMomentum).ToScalar(), LogEpsilon = 1e-12.ToScalar();

    public DinoLoss(int outDim, int globalCrops = 2) : base(nameof(DinoLoss))
    {
        _globalCrops = globalCrops;
        center = zeros(1, outDim);
        register_buffer("center", center);
    }

    public Tensor Center => center;
    public int GlobalCrops => _globalCrops;
    /// <summary>Mean entropy of the teacher's targets in the last <see cref="Forward"/> (log K = uniform, 0 = one-hot).</summary>
    public double LastTeacherEntropy { get; private set; }
    /// <summary>
    /// Entropy of the batch-mean target in the last <see cref="Forward"/>: how many prototypes the batch uses. With
    /// <see cref="LastTeacherEntropy"/> it tells the two collapses apart (DINO paper, section 5.3): both near log K =
    /// uniform collapse (centering won), both near 0 = one prototype for every image (sharpening won); healthy
    /// training has a high marginal entropy and a low per-image one.
    /// </summary>
    public double LastTeacherMarginalEntropy { get; private set; }

    /// <param name="studentOutput">[V * B, K]: all crops, grouped by crop (global crops first).</param>
    /// <param name="teacherOutput">[G * B, K]: the global crops only.</param>
    /// <param name="teacherTemperature">This epoch's tau_t.</param>
    public Tensor Forward(Tensor studentOutput, Tensor teacherOutput, double teacherTemperature)
    {
        using var scope = NewDisposeScope();
        long batch = teacherOutput.shape[0] / _globalCrops;
        int views = (int)(studentOutput.shape[0] / batch);
        using Scalar tau = teacherTemperature.ToScalar();
        var student = (studentOutput / StudentTemperatureScalar).chunk(views);
        var teacher = nn.functional.softmax((teacherOutput - center) / tau, -1).detach().chunk(_globalCrops);
        Tensor total = zeros(1);
        int terms = 0;
        for (int t = 0; t < teacher.Length; t++)
            for (int s = 0; s < student.Length; s++)
            {
                if (s == t) continue; // the same view on both sides
                var loss = (-teacher[t] * nn.functional.log_softmax(student[s], -1)).sum(-1);
                total = total.add(loss.mean(), KeptScalars.One);
                terms++;
            }
        using Scalar pairs = terms.ToScalar();
        var result = (total / pairs).squeeze();
        using (no_grad())
        {
            var p = cat(teacher, 0);
            LastTeacherEntropy = (-(p * p.add(LogEpsilon, KeptScalars.One).log()).sum(-1)).mean().item<float>();
            var marginal = p.mean([0]);
            LastTeacherMarginalEntropy = (-(marginal * marginal.add(LogEpsilon, KeptScalars.One).log()).sum()).item<float>();
        }
        UpdateCenter(teacherOutput);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>c &lt;- m c + (1 - m) mean_batch(g_t) (no gradient).</summary>
    void UpdateCenter(Tensor teacherOutput)
    {
        using var _ = no_grad();
        using Scalar rows = teacherOutput.shape[0].ToScalar();
        using var batchCenter = teacherOutput.sum(0, keepdim: true) / rows;
        using var blended = batchCenter * CenterBlend;
        center.mul_(CenterMomentumScalar).add_(blended, KeptScalars.One);
    }
}

/// <summary>
/// Exponential moving average of weights: shadow = m_t shadow + (1 - m_t) theta, with a momentum m_t that may change
/// every update; optionally bias-corrected. The shadow can be swapped into the model for evaluation and swapped back.
/// DINO's teacher is this with the teacher's own parameters as the shadow of the student's, a cosine momentum and no
/// bias correction (<see cref="DinoStep"/>).
/// </summary>
public sealed class WeightEma : IDisposable
{
    readonly List<(Tensor Target, Tensor Shadow)> _pairs;
    readonly bool _biasCorrection, _ownsShadows;
    Dictionary<Tensor, Tensor>? _backup;
    /// <summary>
    /// prod_t m_t over the updates so far. A shadow started at zero holds theta (1 - prod_t m_t) for a constant theta:
    /// dividing by that corrects the bias, also when m changes every step (1 - m^t holds only for a constant m).
    /// </summary>
    double _momentumProduct = 1;
    int _updates;

    /// <param name="startAtZero">Start the shadow at zero (then use bias correction); otherwise a copy of the weights.</param>
    public WeightEma(nn.Module model, bool startAtZero = false, bool biasCorrection = false)
    {
        _biasCorrection = biasCorrection;
        _ownsShadows = true;
        _pairs = model.parameters().Select(p => ((Tensor)p, startAtZero ? zeros_like(p) : p.detach().clone())).ToList();
    }

    /// <summary>
    /// An average kept in <paramref name="shadows"/>, tensors the caller owns and updates in place (DINO: the teacher's
    /// parameters), of <paramref name="sources"/> (the student's), matched in order and shape.
    /// </summary>
    public WeightEma(IEnumerable<Tensor> sources, IEnumerable<Tensor> shadows)
    {
        _pairs = sources.Zip(shadows).ToList();
        foreach (var (source, shadow) in _pairs)
            if (!source.shape.SequenceEqual(shadow.shape))
                throw new ArgumentException(
                    $"shadow [{string.Join(", ", shadow.shape)}] does not match its source [{string.Join(", ", source.shape)}]");
    }

    /// <summary>shadow &lt;- momentum shadow + (1 - momentum) theta.</summary>
    public void Update(double momentum)
    {
        using var _ = no_grad();
        // Explicit, kept-alive scalars: an implicit conversion's temporary can be freed while libtorch reads it (README).
        using Scalar keep = momentum.ToScalar(), blend = (1 - momentum).ToScalar();
        foreach (var (target, shadow) in _pairs) shadow.mul_(keep).add_(target.detach(), alpha: blend);
        _momentumProduct *= momentum;
        _updates++;
    }

    /// <summary>The averaged value of parameter i (bias-corrected when asked: shadow / (1 - prod_t m_t)).</summary>
    public Tensor Average(int i)
    {
        if (!_biasCorrection || _updates == 0) return _pairs[i].Shadow;
        using Scalar unbiased = (1 - _momentumProduct).ToScalar();
        return _pairs[i].Shadow / unbiased;
    }

    /// <summary>Puts the averaged weights into the model (keeping its own for <see cref="Restore"/>).</summary>
    public void Apply()
    {
        using var _ = no_grad();
        _backup = new Dictionary<Tensor, Tensor>();
        for (int i = 0; i < _pairs.Count; i++)
        {
            _backup[_pairs[i].Target] = _pairs[i].Target.detach().clone();
            _pairs[i].Target.copy_(Average(i));
        }
    }

    public void Restore()
    {
        if (_backup is null) return;
        using var _ = no_grad();
        foreach (var (target, saved) in _backup) { target.copy_(saved); saved.Dispose(); }
        _backup = null;
    }

    public void Dispose()
    {
        if (_ownsShadows) foreach (var (_, shadow) in _pairs) shadow.Dispose();
        if (_backup is not null) foreach (var t in _backup.Values) t.Dispose();
    }
}
