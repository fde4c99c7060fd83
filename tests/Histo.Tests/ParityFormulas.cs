using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>
/// What the MIL parity references (tools/reference/abmil_reference.py, dsmil_reference.py) share with the tests: the
/// formula that fills every parameter, and the 1e-5 comparison.
/// </summary>
static class ParityFormulas
{
    /// <summary>Parameter k in sorted-name order gets 0.3 sin(0.37 j + 1.3 k), j the flat index (the references' formula).</summary>
    public static void Fill(nn.Module model)
    {
        var sd = model.state_dict();
        var names = sd.Keys.OrderBy(n => n, StringComparer.Ordinal).ToList();
        using var _ = no_grad();
        for (int k = 0; k < names.Count; k++)
        {
            using var j = arange(sd[names[k]].numel(), dtype: ScalarType.Float64);
            using var v = 0.3 * sin(0.37 * j + 1.3 * k);
            sd[names[k]].copy_(v.reshape(sd[names[k]].shape).to_type(ScalarType.Float32));
        }
    }

    public static void AssertClose(float[] expected, Tensor actual, string what, double tolerance = 1e-5)
    {
        var ours = actual.flatten().data<float>().ToArray();
        Assert.Equal(expected.Length, ours.Length);
        double worst = expected.Zip(ours).Max(p => Math.Abs(p.First - p.Second));
        Assert.True(worst <= tolerance, $"{what}: max |difference| {worst:E2}");
    }

    /// <summary>
    /// The encoder references' check: features of formula_input(2, S) (sin(0.01 j) over the flat index) at each size of
    /// <paramref name="outputs"/> ({"224": [...], ...}) agree to 1e-4 of the feature scale.
    /// </summary>
    public static void AssertFormulaFeatures(nn.Module<Tensor, Tensor> model, System.Text.Json.JsonElement outputs, string what)
    {
        model.eval();
        using var _ = no_grad();
        foreach (var output in outputs.EnumerateObject())
        {
            int size = int.Parse(output.Name);
            var expected = output.Value.EnumerateArray().Select(e => e.GetSingle()).ToArray();
            using var j = arange(2L * 3 * size * size, dtype: ScalarType.Float64);
            using var input = sin(0.01 * j).reshape(2, 3, size, size).to_type(ScalarType.Float32);
            using var features = model.forward(input);
            Assert.Equal(2, features.shape[0]);
            var ours = features.data<float>().ToArray();
            Assert.Equal(expected.Length, ours.Length);
            double scale = Math.Max(1, expected.Max(Math.Abs));
            double worst = expected.Zip(ours).Max(p => Math.Abs(p.First - p.Second));
            Assert.True(worst <= 1e-4 * scale, $"{what} at {size} px: max |difference| {worst:E2} (feature scale {scale:F2})");
        }
    }
}
