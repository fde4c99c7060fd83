using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>Proves the TorchSharp natives load after a plain build (the Debian 12 GLIBCXX fix works).</summary>
public class TorchSharpLoadTests
{
    [Fact]
    public void TensorOpAndBackwardPassRun()
    {
        var x = tensor(new float[] { 1f, 2f, 3f }, requires_grad: true);
        var y = (x * x).sum(); // y = sum x^2, dy/dx = 2x
        y.backward();
        Assert.Equal(14f, y.item<float>(), 5);
        Assert.Equal(new float[] { 2f, 4f, 6f }, x.grad!.data<float>().ToArray());
    }
}
