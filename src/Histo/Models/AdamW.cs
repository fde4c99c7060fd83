using System.Runtime.InteropServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Histo.Models;

/// <summary>
/// AdamW (Loshchilov and Hutter, "Decoupled weight decay regularization", ICLR 2019) as torch.optim.AdamW's single-tensor
/// step computes it (amsgrad off), for every parameter p with a gradient g at step t:
///   p &lt;- p (1 - lr wd);  m &lt;- b1 m + (1 - b1) g;  v &lt;- b2 v + (1 - b2) g^2;
///   p &lt;- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
/// Histo's own because TorchSharp 0.107's AdamW converts its betas and learning rate to Scalars on the fly for every
/// parameter and step, which another thread's garbage collection can free mid-call (README, Platform notes; the DINO
/// crashes of issue 10). Here every Scalar is held until the step ends. Groups carry their own learning rate and weight
/// decay (DINO's schedules set both each iteration).
/// </summary>
public sealed class AdamW : IDisposable
{
    public const double DefaultLearningRate = 1e-3, DefaultWeightDecay = 1e-2, DefaultBeta1 = 0.9, DefaultBeta2 = 0.999,
        DefaultEpsilon = 1e-8;
    const string FileMagic = "histo-adamw-1";

    public sealed class Group(IEnumerable<Parameter> parameters, double learningRate = DefaultLearningRate,
        double weightDecay = DefaultWeightDecay)
    {
        public IReadOnlyList<Parameter> Parameters { get; } = parameters.ToList();
        public double LearningRate { get; set; } = learningRate;
        public double WeightDecay { get; set; } = weightDecay;
    }

    public IReadOnlyList<Group> Groups { get; }
    readonly double _beta1, _beta2, _epsilon;
    readonly List<Parameter> _parameters;
    readonly Tensor?[] _firstMoment, _secondMoment;
    readonly long[] _steps;

    public AdamW(IEnumerable<Group> groups, double beta1 = DefaultBeta1, double beta2 = DefaultBeta2, double epsilon = DefaultEpsilon)
    {
        Groups = groups.ToList();
        (_beta1, _beta2, _epsilon) = (beta1, beta2, epsilon);
        _parameters = Groups.SelectMany(g => g.Parameters).ToList();
        _firstMoment = new Tensor?[_parameters.Count];
        _secondMoment = new Tensor?[_parameters.Count];
        _steps = new long[_parameters.Count];
    }

    public AdamW(IEnumerable<Parameter> parameters, double learningRate = DefaultLearningRate, double weightDecay = DefaultWeightDecay,
        double beta1 = DefaultBeta1, double beta2 = DefaultBeta2, double epsilon = DefaultEpsilon)
        : this([new Group(parameters, learningRate, weightDecay)], beta1, beta2, epsilon) { }

    /// <summary>Zeroes the gradients that exist (torch 1.13's zero_grad(set_to_none=False), as TorchSharp's).</summary>
    public void ZeroGrad()
    {
        foreach (var p in _parameters)
        {
            using var grad = p.grad;
            grad?.zero_();
        }
    }

    public void Step()
    {
        using var noGrad = no_grad();
        using Scalar beta1 = _beta1.ToScalar(), beta2 = _beta2.ToScalar(), rest1 = (1 - _beta1).ToScalar(),
            rest2 = (1 - _beta2).ToScalar(), epsilon = _epsilon.ToScalar();
        int index = 0;
        foreach (var group in Groups)
        {
            using Scalar decay = (1 - group.LearningRate * group.WeightDecay).ToScalar();
            foreach (var p in group.Parameters)
            {
                int k = index++;
                using var scope = NewDisposeScope();
                var grad = p.grad;
                if (grad is null) continue;
                if (_firstMoment[k] is null)
                {
                    _firstMoment[k] = zeros_like(p).DetachFromDisposeScope();
                    _secondMoment[k] = zeros_like(p).DetachFromDisposeScope();
                }
                Tensor m = _firstMoment[k]!, v = _secondMoment[k]!;
                long t = ++_steps[k];
                p.mul_(decay);
                m.mul_(beta1).add_(grad, rest1);
                v.mul_(beta2).addcmul_(grad, grad, rest2);
                double correction1 = 1 - Math.Pow(_beta1, t), correction2 = 1 - Math.Pow(_beta2, t);
                using Scalar correction2Sqrt = Math.Sqrt(correction2).ToScalar(), stepSize = (-group.LearningRate / correction1).ToScalar();
                var denominator = v.sqrt().div(correction2Sqrt).add_(epsilon, KeptScalars.One);
                p.addcdiv_(m, denominator, stepSize);
            }
        }
    }

    /// <summary>Writes the moments and step counts (float32 parameters), for a resumed run to continue exactly.</summary>
    public void Save(string path)
    {
        using var writer = new BinaryWriter(File.Create(path));
        writer.Write(FileMagic);
        writer.Write(_parameters.Count);
        for (int k = 0; k < _parameters.Count; k++)
        {
            writer.Write(_steps[k]);
            writer.Write(_firstMoment[k] is not null);
            if (_firstMoment[k] is null) continue;
            if (_parameters[k].dtype != ScalarType.Float32)
                throw new HistoException($"{path}: AdamW state is saved for float32 parameters, not {_parameters[k].dtype}");
            writer.Write(_firstMoment[k]!.numel());
            foreach (var moment in new[] { _firstMoment[k]!, _secondMoment[k]! })
                writer.Write(MemoryMarshal.AsBytes(moment.contiguous().data<float>().ToArray().AsSpan()));
        }
    }

    /// <summary>Reads what <see cref="Save"/> wrote, for the same parameters; anything else is refused.</summary>
    public void Load(string path)
    {
        string Refuse(string why) => $"{path}: {why}; it was written for another model or by an older Histo. Start the run again "
            + "(--overwrite)";
        using var reader = new BinaryReader(File.OpenRead(path));
        try
        {
            if (reader.ReadString() != FileMagic) throw new HistoException(Refuse("not Histo's AdamW state"));
        }
        catch (Exception e) when (e is EndOfStreamException or IOException) { throw new HistoException(Refuse("not Histo's AdamW state")); }
        if (reader.ReadInt32() != _parameters.Count) throw new HistoException(Refuse("the parameter count differs"));
        for (int k = 0; k < _parameters.Count; k++)
        {
            _steps[k] = reader.ReadInt64();
            _firstMoment[k]?.Dispose();
            _secondMoment[k]?.Dispose();
            _firstMoment[k] = _secondMoment[k] = null;
            if (!reader.ReadBoolean()) continue;
            long count = reader.ReadInt64();
            if (count != _parameters[k].numel()) throw new HistoException(Refuse($"parameter {k} has another size"));
            var moments = new Tensor[2];
            for (int j = 0; j < 2; j++)
            {
                var values = MemoryMarshal.Cast<byte, float>(reader.ReadBytes(checked((int)count * 4))).ToArray();
                using var flat = tensor(values);
                moments[j] = flat.reshape(_parameters[k].shape).DetachFromDisposeScope();
            }
            (_firstMoment[k], _secondMoment[k]) = (moments[0], moments[1]);
        }
    }

    public void Dispose()
    {
        foreach (var t in _firstMoment.Concat(_secondMoment)) t?.Dispose();
    }
}
