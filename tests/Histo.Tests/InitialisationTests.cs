using Histo.Models;
using Histo.SelfSupervised;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>Freshly built networks: initial weights as the papers' code sets them, and features that depend on the input.</summary>
public class InitialisationTests
{
    [Fact]
    public void TruncatedNormalHasTheRightSpreadAndBounds()
    {
        manual_seed(0);
        using var t = empty(200_000);
        TruncatedNormal.Fill(t, 0.02);
        // A normal truncated at 2 std has std 0.8796 of the untruncated one.
        Assert.Equal(0.8796 * 0.02, t.std().item<float>(), 4);
        Assert.True(t.abs().max().item<float>() <= 0.04f);
    }

    [Theory]
    [InlineData("vit-tiny")]
    [InlineData("vit-tiny-32")]
    [InlineData("resnet18")]
    public void RandomlyInitialisedFeaturesDependOnTheImage(string name)
    {
        manual_seed(0);
        using var encoder = EncoderRegistry.Create(name);
        int s = encoder.InputSize;
        using var images = (rand(8, s, s, 4) * 255).to_type(ScalarType.Byte);
        using var features = encoder.Embed(images);
        using var spread = features.std(0).mean();
        Assert.True(spread.item<float>() > 1e-3, $"{name}: features barely vary across images ({spread.item<float>():G3})");
        using var head = new DinoHead(encoder.FeatureDim, 64);
        using var noGrad = no_grad();
        using var logits = head.forward(features.clone());
        Assert.True(logits.std(0).mean().item<float>() > 1e-4, $"{name}: DINO head outputs barely vary");
    }
}
