using Histo.Imaging;
using Histo.Models;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>The TorchSharp port of ML.NET's ImageNet ResNet-18 against ONNX Runtime running the original graphs.</summary>
public class ResNet18ImportTests(Xunit.Abstractions.ITestOutputHelper output)
{
    static float[] RgbPlanar(RgbaImage image)
    {
        int n = image.Width * image.Height;
        var planar = new float[3 * n];
        for (int i = 0; i < n; i++)
            for (int c = 0; c < 3; c++) planar[c * n + i] = image.Pixels[4 * i + c];
        return planar;
    }

    static float[] OnnxRuntimeFeatures(float[] rgbPlanar)
    {
        using var prep = new InferenceSession(Path.Combine(CntkResNet18.ModelDir, CntkResNet18.PreprocessFile));
        using var net = new InferenceSession(Path.Combine(CntkResNet18.ModelDir, CntkResNet18.ModelFile));
        var input = new DenseTensor<float>(rgbPlanar, [1, 3, 224, 224]);
        using var prepared = prep.Run([NamedOnnxValue.CreateFromTensor("OriginalInput", input)]);
        var bgr = prepared.First().AsTensor<float>().ToArray();
        using var output = net.Run([NamedOnnxValue.CreateFromTensor("Input247", new DenseTensor<float>(bgr, [1, 3, 224, 224]))]);
        return output.First().AsTensor<float>().ToArray();
    }

    [Theory]
    [Trait("Category", "SharedData")]
    [InlineData("TUM-AACHEHDV.tif")]
    [InlineData("LYM-AATTSRNN.tif")]
    [InlineData("STR-AACRYYNQ.tif")]
    [InlineData("ADI-AAQEFMRI.tif")]
    public void SharedData_FeaturesMatchOnnxRuntime(string tile)
    {
        var image = RgbaImage.Load(SharedData.Path_("nct-crc-samples", tile));
        Assert.Equal((224, 224), (image.Width, image.Height));
        var planar = RgbPlanar(image);
        var reference = OnnxRuntimeFeatures(planar);

        using var model = CntkResNet18.Load();
        using var mean = CntkResNet18.LoadMeanImage();
        using var _ = no_grad();
        using var rgb = tensor(planar, [1, 3, 224, 224]);
        using var bgr = rgb.flip(1) - mean;
        using var features = model.forward(bgr);
        var ours = features.data<float>().ToArray();

        Assert.Equal(512, ours.Length);
        double dot = 0, a = 0, b = 0;
        for (int i = 0; i < 512; i++) { dot += ours[i] * reference[i]; a += ours[i] * ours[i]; b += reference[i] * reference[i]; }
        double cosine = dot / Math.Sqrt(a * b);
        output.WriteLine($"{tile}: cosine to ONNX Runtime {cosine:F7}");
        Assert.True(cosine >= 0.9999, $"{tile}: cosine {cosine:F6}");
        Assert.True(ours.Zip(reference).Max(p => Math.Abs(p.First - p.Second)) < 1e-3 * reference.Max(Math.Abs) + 1e-4);
    }

    [Fact]
    [Trait("Category", "SharedData")]
    public void SharedData_Bfloat16FeaturesAgreeWithFloat32()
    {
        var files = Directory.GetFiles(SharedData.Path_("nct-crc-samples"), "*.tif").Order().ToArray();
        var pixels = files.SelectMany(f => RgbaImage.Load(f).Pixels).ToArray();
        using var batch = tensor(pixels, [files.Length, 224, 224, 4]);
        using var fp32 = EncoderRegistry.Create(EncoderRegistry.Default);
        using var bf16 = EncoderRegistry.Create(EncoderRegistry.Default, ScalarType.BFloat16);
        using var a = fp32.Embed(batch);
        using var b = bf16.Embed(batch);
        using var cos = nn.functional.cosine_similarity(a, b, dim: 1);
        var values = cos.data<float>().ToArray();
        output.WriteLine($"bf16 vs fp32 cosine over {files.Length} tiles: mean {values.Average():F5}, min {values.Min():F5}");
        // Measured on the nine NCT-CRC tiles: mean 0.99925, min 0.99495 (the background tile).
        Assert.All(values, v => Assert.True(v > 0.99, $"bf16 cosine {v}"));
    }
}
