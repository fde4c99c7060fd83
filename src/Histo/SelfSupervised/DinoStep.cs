using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Histo.SelfSupervised;

/// <summary>The schedule values of one DINO iteration.</summary>
public readonly record struct DinoStepSettings(double LearningRate, double WeightDecay, double TeacherMomentum, double TeacherTemperature,
    bool FreezeLastLayer, double ClipGrad);

/// <summary>
/// What one DINO iteration reports: the loss, the mean entropy of the teacher's targets (log K = uniform, 0 = one-hot)
/// and the entropy of their batch mean (see <see cref="DinoLoss.LastTeacherMarginalEntropy"/>).
/// </summary>
public readonly record struct DinoStepResult(double Loss, double TeacherEntropy, double TeacherMarginalEntropy);

/// <summary>
/// One DINO iteration as main_dino.py's train_one_epoch body, on crops that are already made: the teacher sees
/// the global crops, the student all; loss with centering and sharpening; backward; each parameter's gradient
/// clipped separately; the last layer's gradients dropped while it is frozen; AdamW step (weight decay on
/// group 0 only: weights with 2+ dimensions); then the EMA teacher update
/// theta_t &lt;- m theta_t + (1 - m) theta_s. Owns the student, the teacher (a copy of the student at the
/// start, no gradients), the loss (with its centre) and the optimiser.
/// </summary>
public sealed class DinoStep : IDisposable
{
    public DinoNetwork Student { get; }
    public DinoNetwork Teacher { get; }
    public DinoLoss Loss { get; }
    public Models.AdamW Optimizer { get; }
    readonly HashSet<Parameter> _lastLayer;
    /// <summary>The teacher's parameters as a moving average of the student's, updated in place (no bias correction).</summary>
    readonly WeightEma _teacherEma;

    public DinoStep(DinoNetwork student, DinoNetwork teacher, int outDim, int globalCrops = 2)
    {
        Student = student;
        Teacher = teacher;
        teacher.load_state_dict(student.state_dict());
        foreach (var p in teacher.parameters()) p.requires_grad = false;
        Loss = new DinoLoss(outDim, globalCrops);
        // DINO's utils.get_params_groups: biases and norm parameters (1 dimension) get no weight decay.
        var trainable = student.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        var regularised = new Models.AdamW.Group(trainable.Where(p => p.parameter.dim() >= 2).Select(p => p.parameter), weightDecay: 0.04);
        var notRegularised = new Models.AdamW.Group(trainable.Where(p => p.parameter.dim() < 2).Select(p => p.parameter), weightDecay: 0);
        Optimizer = new Models.AdamW([regularised, notRegularised]);
        _lastLayer = student.Head.LastLayer.ToHashSet();
        _teacherEma = new WeightEma(student.parameters(), teacher.parameters());
    }

    /// <param name="crops">Views grouped by crop, global crops first: each [B, 3, S, S], normalised.</param>
    public DinoStepResult Run(IReadOnlyList<Tensor> crops, DinoStepSettings settings)
    {
        using var scope = NewDisposeScope();
        foreach (var g in Optimizer.Groups) g.LearningRate = settings.LearningRate;
        Optimizer.Groups[0].WeightDecay = settings.WeightDecay;
        Optimizer.Groups[1].WeightDecay = 0;

        var teacherOutput = Teacher.Forward(crops.Take(Loss.GlobalCrops).ToList()).detach();
        var studentOutput = Student.Forward(crops);
        var loss = Loss.Forward(studentOutput, teacherOutput, settings.TeacherTemperature);
        double value = loss.item<float>();
        if (!double.IsFinite(value)) return new DinoStepResult(value, double.NaN, double.NaN);

        Optimizer.ZeroGrad();
        loss.backward();
        ClipPerParameter(Student, settings.ClipGrad);
        if (settings.FreezeLastLayer)
            foreach (var p in _lastLayer) p.grad = null; // main_dino's cancel_gradients_last_layer: p.grad = None
        Optimizer.Step();

        _teacherEma.Update(settings.TeacherMomentum); // theta_t <- m theta_t + (1 - m) theta_s
        return new DinoStepResult(value, Loss.LastTeacherEntropy, Loss.LastTeacherMarginalEntropy);
    }

    /// <summary>DINO's utils.clip_gradients: each parameter's gradient scaled to norm at most <paramref name="clip"/>.</summary>
    static void ClipPerParameter(nn.Module model, double clip)
    {
        if (clip <= 0) return;
        using var _ = no_grad();
        foreach (var p in model.parameters())
        {
            if (p.grad is null) continue;
            double norm = p.grad.norm().item<float>();
            double coefficient = clip / (norm + 1e-6);
            if (coefficient < 1)
            {
                using Scalar scale = coefficient.ToScalar(); // kept alive across the native call (README, Platform notes)
                p.grad.mul_(scale);
            }
        }
    }

    public void Dispose()
    {
        _teacherEma.Dispose();
        Optimizer.Dispose();
        Loss.Dispose();
    }
}
