using Histo.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Distillation;

/// <summary>
/// Knowledge distillation with soft targets (Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network",
/// 2015): L = (1 - a) CE(y, softmax(z_s)) + a T^2 KL(softmax(z_t / T) || softmax(z_s / T)), each term a batch mean.
/// The T^2 keeps the soft targets' gradients on the scale of the hard targets' as T grows. The KL term is
/// RepDistiller's DistillKL: kl_div(log_softmax(z_s / T), softmax(z_t / T), sum) T^2 / B.
/// </summary>
public static class SoftTargets
{
    /// <summary>RepDistiller's temperature for KD (its CIFAR-100 table: T = 4).</summary>
    public const double DefaultTemperature = 4.0;
    /// <summary>RepDistiller's KD weights: 0.9 on the soft targets, 0.1 on the labels.</summary>
    public const double DefaultAlpha = 0.9;

    /// <summary>T^2 KL(softmax(z_t / T) || softmax(z_s / T)), summed over classes and averaged over the batch; logits [B, K].</summary>
    public static Tensor KlTerm(Tensor studentLogits, Tensor teacherLogits, double temperature)
    {
        using var scope = NewDisposeScope();
        using var t = temperature.ToScalar();
        using var tSquared = (temperature * temperature).ToScalar();
        var logStudent = nn.functional.log_softmax(studentLogits.div(t), 1);
        var logTeacher = nn.functional.log_softmax(teacherLogits.div(t), 1);
        // KL(p_t || p_s) = sum p_t (log p_t - log p_s); the teacher is a fixed target, so no gradient flows into it.
        var kl = logTeacher.exp().mul(logTeacher.sub(logStudent)).sum().div(KeptScalars.Of(studentLogits.shape[0]));
        return kl.mul(tSquared).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Hinton's loss: (1 - alpha) cross-entropy with the labels [B] (class indices) plus alpha times <see cref="KlTerm"/>.
    /// Without labels (unlabelled data) only the soft-target term is used, whatever alpha.
    /// </summary>
    public static Tensor Loss(Tensor studentLogits, Tensor teacherLogits, Tensor? labels, double alpha = DefaultAlpha,
        double temperature = DefaultTemperature)
    {
        Require.InRange("--alpha", alpha, 0, 1);
        Require.Positive("--temperature", temperature);
        using var scope = NewDisposeScope();
        using var teacher = teacherLogits.detach();
        var kl = KlTerm(studentLogits, teacher, temperature);
        if (labels is null) return kl.MoveToOuterDisposeScope();
        using var a = alpha.ToScalar();
        using var rest = (1 - alpha).ToScalar();
        var ce = nn.functional.cross_entropy(studentLogits, labels);
        return ce.mul(rest).add(kl.mul(a), KeptScalars.One).MoveToOuterDisposeScope();
    }
}
