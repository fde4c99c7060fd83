using Histo.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Distillation;

/// <summary>
/// Attention transfer (Zagoruyko and Komodakis, "Paying More Attention to Attention", ICLR 2017): the spatial attention
/// map of an activation A [B, C, H, W] is Q = vec(mean_c A_c^2) L2-normalised per image, and the student matches the
/// teacher's at each pair of stages: L_AT = (beta / 2) sum_j mean((Q_s,j - Q_t,j)^2), beta = 1000. Where the two
/// stages differ in size the larger activation is adaptively average-pooled to the smaller before its map is taken
/// (RepDistiller's Attention).
/// </summary>
public static class AttentionTransfer
{
    /// <summary>The paper's weight of the attention term.</summary>
    public const double DefaultBeta = 1000;

    /// <summary>Q [B, H*W] of an activation [B, C, H, W], pooled first to <paramref name="size"/> when it is larger.</summary>
    public static Tensor Map(Tensor activation, long? size = null)
    {
        using var scope = NewDisposeScope();
        var a = activation;
        if (size is { } s && (a.shape[2] > s || a.shape[3] > s)) a = nn.functional.adaptive_avg_pool2d(a, [s, s]);
        var q = a.pow(KeptScalars.Of(2L)).mean([1]).reshape(a.shape[0], -1);
        return nn.functional.normalize(q, p: 2, dim: 1).MoveToOuterDisposeScope();
    }

    /// <summary>The side at which a student and a teacher stage are compared: the smaller of the two.</summary>
    public static long CommonSize(long studentSide, long teacherSide) => Math.Min(studentSide, teacherSide);

    /// <summary>
    /// L_AT between the student's stage activations and the teacher's maps (from <see cref="Map"/> at the common size,
    /// e.g. cached once per patch and view): each student activation is pooled to its teacher map's side.
    /// </summary>
    public static Tensor Loss(IReadOnlyList<Tensor> studentStages, IReadOnlyList<Tensor> teacherMaps, double beta = DefaultBeta)
    {
        if (studentStages.Count != teacherMaps.Count)
            throw new ArgumentException($"{studentStages.Count} student stages for {teacherMaps.Count} teacher maps");
        using var scope = NewDisposeScope();
        Tensor? sum = null;
        for (int j = 0; j < studentStages.Count; j++)
        {
            long side = (long)Math.Round(Math.Sqrt(teacherMaps[j].shape[1]));
            var term = Map(studentStages[j], side).sub(teacherMaps[j].detach()).pow(KeptScalars.Of(2L)).mean();
            sum = sum is null ? term : sum.add(term, KeptScalars.One);
        }
        using var halfBeta = (beta / 2).ToScalar();
        return sum!.mul(halfBeta).MoveToOuterDisposeScope();
    }
}
