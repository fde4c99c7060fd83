using Histo.Imaging;
using Histo.SelfSupervised;
using static TorchSharp.torch;

namespace Histo.Tests;

public class MultiCropTests
{
    [Fact]
    public void CropBoxesFollowScaleAndRatioAndTheSeed()
    {
        var a = new Random(5); var b = new Random(5);
        for (int i = 0; i < 200; i++)
        {
            var box = MultiCrop.SampleCrop(a, 224, 224, 0.05, 0.4);
            Assert.Equal(box, MultiCrop.SampleCrop(b, 224, 224, 0.05, 0.4));
            double area = box.Height * box.Width / (224.0 * 224);
            Assert.InRange(area, 0.04, 0.42);
            Assert.InRange(box.Width / (double)box.Height, 0.7, 1.4);
            Assert.InRange(box.Top + box.Height, 1, 224);
            Assert.InRange(box.Left + box.Width, 1, 224);
        }
    }

    [Fact]
    public void StainJitterOfZeroIsTheIdentity()
    {
        using var j = arange(3 * 16 * 16, dtype: ScalarType.Float32);
        using var x = (0.3 + 0.6 * (0.5 + 0.5 * sin(0.1 * j))).reshape(1, 3, 16, 16);
        using var y = MultiCrop.HeJitter(x, new Random(1), sigma: 0);
        Assert.True(y.allclose(x, rtol: 0, atol: 1e-4));
        using var z = MultiCrop.HeJitter(x, new Random(1), sigma: 0.1);
        Assert.False(z.allclose(x, rtol: 0, atol: 1e-3));
    }

    [Fact]
    public void DinoViewsHaveTheRecipesSizesAndAreDeterministic()
    {
        using var image = rand(3, 256, 256, generator: new Generator(0));
        var aug = new DinoAugmentation { LocalCrops = 3 };
        var first = aug.Views(image, new Random(9));
        var second = aug.Views(image, new Random(9));
        Assert.Equal(5, first.Count);
        Assert.Equal(new long[] { 3, 224, 224 }, first[0].shape);
        Assert.Equal(new long[] { 3, 96, 96 }, first[4].shape);
        for (int i = 0; i < first.Count; i++) Assert.True(first[i].equal(second[i]).all().item<bool>());
        Assert.All(first, v => Assert.InRange(v.max().item<float>(), 0, 1.0001f));
        foreach (var v in first.Concat(second)) v.Dispose();
    }
}
