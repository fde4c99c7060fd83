using System.Globalization;
using System.Text;
using Histo.IO;
using Histo.Slides;
using static Histo.Synthesis.ProceduralNoise;

namespace Histo.Synthesis;

/// <summary>
/// Nucleus ground truth for regions of a synthetic slide, which the generator knows exactly (every nucleus is painted by
/// one branch of <see cref="SyntheticTissue"/>): per region <c>images/NAME.png</c> (the slide's own pixels, read back
/// through OpenSlide, JPEG artefacts included), <c>inst/NAME.png</c> (16-bit instance ids) and <c>types/NAME.csv</c>
/// (CoNSeP's four types), NAME = <c>SLIDE_x_y</c> with the region's level-0 corner. <c>histo nuclei images/</c> then
/// <c>histo nuclei-eval --truth inst/</c> scores a detector against it.
/// </summary>
public static class SyntheticNucleiTruth
{
    /// <summary>Region side in pixels: MoNuSeg's tiles are 1000 px at 40x; this is their area at the same scale.</summary>
    public const int DefaultRegionSize = 1000;
    const int Attempts = 2000;

    /// <summary>
    /// Writes <paramref name="count"/> regions of <paramref name="size"/> px mostly on tissue (the centre and the corners of the
    /// inner half),
    /// chosen from the slide's seed (half inside tumour where there is any). Regions already written are kept.
    /// </summary>
    public static IReadOnlyList<string> Write(SyntheticSlideSpec spec, string slidePath, string outputDir, int count,
        int size = DefaultRegionSize)
    {
        if (size > spec.Width || size > spec.Height)
            throw new UsageException($"--nuclei-region {size} px is larger than the slide ({spec.Width} x {spec.Height} px)");
        var tissue = new SyntheticTissue(spec);
        foreach (var sub in new[] { "images", "inst", "types" }) Directory.CreateDirectory(Path.Combine(outputDir, sub));
        var corners = Choose(spec, tissue, count, size);
        using var slide = WholeSlide.Open(slidePath);
        var names = new List<string>();
        foreach (var (x, y) in corners)
        {
            string name = $"{spec.SlideId}_{x}_{y}";
            names.Add(name);
            string types = Path.Combine(outputDir, "types", name + ".csv");
            if (File.Exists(types)) continue;   // written last: the region is complete
            slide.ReadRegion(x, y, 0, size, size).Save(Path.Combine(outputDir, "images", name + ".png"));
            var (labels, nucleusTypes) = tissue.NucleusLabels(x, y, size, size);
            if (nucleusTypes.Length - 1 > ushort.MaxValue)
                throw new HistoException($"{name}: {nucleusTypes.Length - 1} nuclei do not fit a 16-bit label map; "
                    + "use a smaller --nuclei-region");
            LabelMapFile.WritePng(Path.Combine(outputDir, "inst", name + ".png"), new LabelMap(size, size, labels));
            var csv = new StringBuilder("nucleus_id,type,type_name\n");
            for (int id = 1; id < nucleusTypes.Length; id++)
                csv.Append(CultureInfo.InvariantCulture,
                    $"{id},{(int)nucleusTypes[id]},{nucleusTypes[id].ToString().ToLowerInvariant()}\n");
            AtomicFile.WriteAllText(types, csv.ToString());
        }
        return names;
    }

    /// <summary>Region corners from the seed: candidates drawn uniformly, kept when on tissue (and, for half, on tumour).</summary>
    static List<(long X, long Y)> Choose(SyntheticSlideSpec spec, SyntheticTissue tissue, int count, int size)
    {
        double mpp = spec.Mpp;
        int q = size / 4, c = size / 2;
        bool OnTissue(long x, long y) => new[] { (q, q), (size - q, q), (q, size - q), (size - q, size - q), (c, c) }
            .All(p => tissue.InTissue((x + p.Item1 + 0.5) * mpp, (y + p.Item2 + 0.5) * mpp));
        bool OnTumour(long x, long y) => tissue.InTumour((x + c + 0.5) * mpp, (y + c + 0.5) * mpp);
        var chosen = new List<(long X, long Y)>();
        for (int attempt = 0; attempt < Attempts && chosen.Count < count; attempt++)
        {
            long x = (long)(Unit(spec.Seed, 200, attempt) * (spec.Width - size + 1));
            long y = (long)(Unit(spec.Seed, 201, attempt) * (spec.Height - size + 1));
            if (!OnTissue(x, y)) continue;
            bool wantTumour = spec.Subtype != TissueSubtype.Normal && chosen.Count % 2 == 0 && attempt < Attempts / 2;
            if (wantTumour && !OnTumour(x, y)) continue;
            if (chosen.Any(c => Math.Abs(c.X - x) < size && Math.Abs(c.Y - y) < size)) continue;   // regions do not overlap
            chosen.Add((x, y));
        }
        if (chosen.Count < count)
            throw new HistoException($"{spec.SlideId}: room for only {chosen.Count} of {count} non-overlapping {size} px regions on "
                + "tissue; ask for fewer --nuclei-regions or a smaller --nuclei-region");
        return chosen;
    }
}
