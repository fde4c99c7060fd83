using System.Diagnostics;
using Histo.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Bench;

/// <summary>Encoder throughput under different TorchSharp settings (memory format, batch, threads).</summary>
static class ProfileEncoder
{
    public static int Run()
    {
        set_num_threads(Environment.ProcessorCount);
        Console.WriteLine($"threads {get_num_threads()}, interop {get_num_interop_threads()}");
        manual_seed(0);
        using var model = new ResNet(ResNetConfig.ResNet18);
        model.eval();
        foreach (int batch in new[] { 16, 64 })
        {
            using var x = randn(batch, 3, 224, 224);
            Console.WriteLine($"batch {batch}: contiguous {Ips(model, x):0.0} img/s");
            using (var _ = no_grad()) Console.WriteLine($"batch {batch}: no_grad {IpsPlain(model, x):0.0} img/s");
        }
        return 0;
    }

    static double IpsPlain(nn.Module<Tensor, Tensor> model, Tensor x)
    {
        using (var w = model.forward(x)) { }
        var c = Stopwatch.StartNew();
        for (int i = 0; i < 3; i++) using (var y = model.forward(x)) { }
        return 3 * x.shape[0] / c.Elapsed.TotalSeconds;
    }

    static double Ips(nn.Module<Tensor, Tensor> model, Tensor x)
    {
        using var _ = inference_mode();
        using (var w = model.forward(x)) { }
        var c = Stopwatch.StartNew();
        for (int i = 0; i < 3; i++) using (var y = model.forward(x)) { }
        return 3 * x.shape[0] / c.Elapsed.TotalSeconds;
    }
}
