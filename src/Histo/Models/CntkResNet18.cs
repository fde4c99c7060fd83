using Histo.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Models;

/// <summary>
/// The ImageNet ResNet-18 that ML.NET ships (NuGet Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1,
/// exported from CNTK 2.6 to ONNX with a fixed batch of 1). Its weights move into Histo's TorchSharp
/// <see cref="ResNet"/> so patches run in batches. Its last stage has three blocks, not two. Two CNTK habits are kept: "same" padding with the odd
/// pixel first on strided layers, and the input convention of its preprocessing graph (BGR, 0-255, minus a
/// 224 x 224 mean image).
/// </summary>
public static class CntkResNet18
{
    public const string ModelFile = "ResNet18.onnx";
    public const string PreprocessFile = "ResNetPreprocess.onnx";
    public const int InputSize = 224;

    /// <summary>Folder beside the Histo assembly where the build copies the ONNX files.</summary>
    public static string ModelDir => Path.Combine(AppContext.BaseDirectory, "models", "resnet18-imagenet");

    /// <summary>
    /// Not torchvision's ResNet-18: the CNTK graph has three basic blocks in its last stage (2-2-2-3, 22
    /// convolutions and 9 residual additions, read off the ONNX file), and CNTK's padding.
    /// </summary>
    public static ResNetConfig Config => new("resnet18-imagenet", false, [2, 2, 2, 3], [64, 128, 256, 512], ResNetPadding.CntkSame);

    /// <summary>Builds the network and loads the ONNX weights, checking every tensor's name and shape.</summary>
    public static ResNet Load(string? modelDir = null)
    {
        modelDir ??= ModelDir;
        var onnx = OnnxModelFile.Read(Path.Combine(modelDir, ModelFile));
        var model = new ResNet(Config);
        var assigned = new Dictionary<string, OnnxModelFile.Initializer>();
        // Walk the graph in order: the stem, then per block its 3x3 convolutions and, for the first block of
        // a stage, the 1x1 strided projection; each convolution is followed by its batch normalisation.
        int stage = 0, block = 0, convInBlock = 0;
        bool stem = true;
        var nodes = onnx.Nodes;
        for (int i = 0; i < nodes.Count; i++)
        {
            var node = nodes[i];
            if (node.OpType == "Add")
            {
                if (!stem) { block++; convInBlock = 0; if (block == Config.Layers[stage]) { stage++; block = 0; } }
                continue;
            }
            if (node.OpType != "Conv") continue;
            var bn = nodes.Skip(i + 1).First(n => n.Inputs[0] == node.Outputs[0]);
            if (bn.OpType != "BatchNormalization") throw new HistoException($"{ModelFile}: expected batch normalisation after {node.Outputs[0]}, found {bn.OpType}");
            string convName, bnName;
            if (stem) { convName = "conv1"; bnName = "bn1"; stem = false; }
            else
            {
                string prefix = $"layer{stage + 1}.{block}.";
                bool projection = node.Ints["kernel_shape"][0] == 1;
                if (projection) { convName = prefix + "downsample.0"; bnName = prefix + "downsample.1"; }
                else { convInBlock++; convName = prefix + $"conv{convInBlock}"; bnName = prefix + $"bn{convInBlock}"; }
            }
            assigned[convName + ".weight"] = onnx.Initializers[node.Inputs[1]];
            assigned[bnName + ".weight"] = onnx.Initializers[bn.Inputs[1]];
            assigned[bnName + ".bias"] = onnx.Initializers[bn.Inputs[2]];
            assigned[bnName + ".running_mean"] = onnx.Initializers[bn.Inputs[3]];
            assigned[bnName + ".running_var"] = onnx.Initializers[bn.Inputs[4]];
            if (bn.Floats.TryGetValue("epsilon", out float eps) && Math.Abs(eps - 1e-5) > 1e-8)
                throw new HistoException($"{ModelFile}: batch norm epsilon {eps} differs from TorchSharp's 1e-5");
        }
        var tensors = assigned.ToDictionary(kv => kv.Key, kv => tensor(kv.Value.Data, kv.Value.Dims));
        try { WeightLoading.Load(model, tensors, $"{ModelFile} (ONNX)", strict: true, ignore: n => n.EndsWith("num_batches_tracked")); }
        finally { foreach (var t in tensors.Values) t.Dispose(); }
        model.eval();
        return model;
    }

    /// <summary>The 224 x 224 BGR mean image of the preprocessing graph, as [3, 224, 224].</summary>
    public static Tensor LoadMeanImage(string? modelDir = null)
    {
        modelDir ??= ModelDir;
        var prep = OnnxModelFile.Read(Path.Combine(modelDir, PreprocessFile));
        var ops = string.Join(",", prep.Nodes.Select(n => n.OpType));
        if (ops != "Split,Concat,Sub") throw new HistoException($"{PreprocessFile}: unexpected graph ({ops}); expected RGB->BGR then mean subtraction");
        var mean = prep.Initializers["MeanImage"];
        return tensor(mean.Data, mean.Dims).reshape(3, InputSize, InputSize);
    }
}
