using System.Text.Json;
using Histo.IO;
using Histo.Models;
using TorchSharp.Modules;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Histo.Distillation;

/// <summary>
/// A distilled student as an encoder: its backbone and the linear projection that maps the backbone's feature into the
/// teacher's space, f(x) = W backbone(x) + b. The projected feature is what was trained to point where the teacher's
/// does, so it is the one <c>histo embed --encoder RUN</c> writes (the teacher's dimension).
/// </summary>
public sealed class DistilledEncoder : nn.Module<Tensor, Tensor>
{
    public const string WeightsFile = "student.safetensors";
    /// <summary>Marks a <c>histo distill</c> run folder as an encoder.</summary>
    public const string InfoFile = "distilled_encoder.json";

    /// <summary>What a run's encoder is: the student's registered architecture and input side, its own and the teacher's
    /// feature dimensions, and the teacher it learnt from.</summary>
    public sealed record Info(string Student, int InputSize, int StudentDim, int FeatureDim, string Teacher);

    readonly nn.Module<Tensor, Tensor> backbone;
    readonly Linear projection;

    public nn.Module<Tensor, Tensor> Backbone => backbone;
    public Linear Projection => projection;

    public DistilledEncoder(nn.Module<Tensor, Tensor> backbone, int studentDim, int teacherDim) : base(nameof(DistilledEncoder))
    {
        this.backbone = backbone;
        projection = nn.Linear(studentDim, teacherDim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return projection.forward(backbone.forward(x)).MoveToOuterDisposeScope();
    }

    public static bool IsRun(string dir) => File.Exists(Path.Combine(dir, InfoFile));

    public static Info ReadInfo(string runDir) => JsonSerializer.Deserialize<Info>(File.ReadAllText(Path.Combine(runDir, InfoFile)))
        ?? throw new HistoException($"{Path.Combine(runDir, InfoFile)}: empty; run 'histo distill' again");

    /// <summary>The run's encoder, loaded strictly, with its spec (input size and the student's normalisation).</summary>
    public static (EncoderSpec Spec, DistilledEncoder Network) Load(string runDir)
    {
        var info = ReadInfo(runDir);
        var studentSpec = EncoderRegistry.Get(info.Student);
        var network = new DistilledEncoder(studentSpec.Create(), info.StudentDim, info.FeatureDim);
        string file = Path.Combine(runDir, WeightsFile);
        try
        {
            var tensors = Checkpoint.Read(file);
            try { WeightLoading.Load(network, tensors, file, strict: true, ignore: n => n.EndsWith("num_batches_tracked")); }
            finally { foreach (var t in tensors.Values) t.Dispose(); }
        }
        catch { network.Dispose(); throw; }
        var spec = studentSpec with
        {
            Name = $"distilled:{info.Student}<-{info.Teacher}", InputSize = info.InputSize, FeatureDim = info.FeatureDim,
            Weights = Path.GetFullPath(runDir), Parameters = null,
        };
        return (spec, network);
    }

    /// <summary>Writes the encoder and its description into the run folder (each atomically, the description last).</summary>
    public void Save(string runDir, Info info)
    {
        var tensors = state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
        AtomicFile.Write(Path.Combine(runDir, WeightsFile), tmp => Safetensors.SaveStateDict(tmp, tensors));
        AtomicFile.WriteAllText(Path.Combine(runDir, InfoFile), JsonSerializer.Serialize(info));
    }
}
