namespace Histo.SelfSupervised;

/// <summary>
/// Per-iteration schedules precomputed as plain arrays, as DINO's main_dino.py does (utils.cosine_scheduler),
/// so tests and resumed runs read the same numbers.
/// </summary>
public static class Schedules
{
    /// <summary>
    /// Linear warm-up from <paramref name="warmupStart"/> to <paramref name="baseValue"/> over the warm-up epochs,
    /// then a cosine from <paramref name="baseValue"/> to <paramref name="finalValue"/>:
    /// v_i = final + (base - final)(1 + cos(pi i / n)) / 2 over the remaining n iterations.
    /// </summary>
    public static double[] Cosine(double baseValue, double finalValue, int epochs, int iterationsPerEpoch, int warmupEpochs = 0,
        double warmupStart = 0)
        => CosineOverIterations(baseValue, finalValue, epochs * iterationsPerEpoch, warmupEpochs * iterationsPerEpoch, warmupStart);

    /// <summary>The same over <paramref name="total"/> iterations of which the first <paramref name="warmup"/> warm up.</summary>
    public static double[] CosineOverIterations(double baseValue, double finalValue, int total, int warmup, double warmupStart = 0)
    {
        var schedule = new double[total];
        for (int i = 0; i < Math.Min(warmup, total); i++)
            schedule[i] = warmup == 1 ? baseValue : warmupStart + (baseValue - warmupStart) * i / (warmup - 1.0); // np.linspace
        int n = total - warmup;
        for (int i = 0; i < n; i++)
            schedule[warmup + i] = finalValue + 0.5 * (baseValue - finalValue) * (1 + Math.Cos(Math.PI * i / n));
        return schedule;
    }

    /// <summary>DINO's teacher temperature: linear from <paramref name="warmupTemperature"/> to <paramref name="temperature"/> over
    /// the warm-up epochs, then constant (one value per epoch).</summary>
    public static double[] TeacherTemperature(double warmupTemperature, double temperature, int warmupEpochs, int epochs)
    {
        var schedule = new double[epochs];
        for (int e = 0; e < epochs; e++)
            schedule[e] = e < warmupEpochs
                ? (warmupEpochs == 1 ? warmupTemperature : warmupTemperature + (temperature - warmupTemperature) * e / (warmupEpochs - 1.0))
                : temperature;
        return schedule;
    }
}
