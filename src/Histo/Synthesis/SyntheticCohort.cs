using System.Globalization;
using System.Text;
using System.Text.Json;
using Histo.Imaging;
using Histo.IO;
using static Histo.Synthesis.ProceduralNoise;

namespace Histo.Synthesis;

/// <summary>Options of <c>histo synth</c>; the defaults make the demo cohort.</summary>
public sealed record SyntheticCohortOptions
{
    /// <summary>Number of slides (cases get one or two slides each).</summary>
    public int Slides { get; init; } = DefaultSlides;
    public ulong Seed { get; init; } = 0;
    /// <summary>Level-0 width and height in pixels. The default keeps the demo to a few minutes on 2 cores.</summary>
    public int Width { get; init; } = 4096;
    public int Height { get; init; } = 3072;
    /// <summary>Microns per pixel at level 0 (0.5 is a 20x scan).</summary>
    public double Mpp { get; init; } = 0.5;
    public int JpegQuality { get; init; } = 90;
    /// <summary>Tissue texture without cells (fast): for size and memory benchmarks, not for learning.</summary>
    public bool Coarse { get; init; }
    /// <summary>Regions per slide with nucleus ground truth under <c>nuclei-truth/</c> (0: none).</summary>
    public int NucleiRegions { get; init; }
    public int NucleiRegionSize { get; init; } = SyntheticNucleiTruth.DefaultRegionSize;
    /// <summary>Captioned patches per slide under <c>captions/</c> (0: none), of this side in pixels.</summary>
    public int Captions { get; init; }
    public int CaptionSize { get; init; } = 64;

    public const int DefaultSlides = 30;

    public void Validate()
    {
        if (Slides < 1) throw new UsageException($"--slides must be at least 1 (got {Slides})");
        if (Width < 256
            || Height < 256) throw new UsageException($"slide size {Width}x{Height} is too small: use at least 256 px per side");
        if ((long)Width * Height > 200_000L * 200_000L) throw new UsageException($"slide size {Width}x{Height} is beyond what Histo "
            + $"synthesises (200,000 px per side)");
        if (!(Mpp > 0.05 && Mpp < 20)) throw new UsageException($"--mpp {Mpp} is not a plausible microns-per-pixel value (0.05-20)");
        if (JpegQuality is < 1 or > 100) throw new UsageException($"JPEG quality {JpegQuality} must be 1-100");
        if (NucleiRegions < 0) throw new UsageException($"--nuclei-regions must be 0 or more (got {NucleiRegions})");
        if (NucleiRegionSize is < 64 or > 4096) throw new UsageException($"--nuclei-region must be 64-4096 px (got {NucleiRegionSize})");
        if (NucleiRegions > 0 && Coarse) throw new UsageException("--nuclei-regions needs cells; drop --coarse");
        if (Captions < 0) throw new UsageException($"--captions must be 0 or more (got {Captions})");
        if (CaptionSize is < 16 or > 512) throw new UsageException($"--caption-size must be 16-512 px (got {CaptionSize})");
        if (Captions > 0 && CaptionSize * SyntheticCaptions.Zoom > Math.Min(Width, Height))
            throw new UsageException($"--caption-size {CaptionSize} reads {CaptionSize * SyntheticCaptions.Zoom} px, more than the slide");
    }
}

/// <summary>Ground truth written beside each synthetic slide.</summary>
public sealed record SyntheticSlideTruth(string SlideId, string CaseId, string Label, int Grade, double TumourBurden, double Atypia,
    int Width, int Height, double Mpp, int MaskDownsample, string TumourMask, string TissueMask);

/// <summary>
/// Histo's built-in cohort: procedurally generated H&amp;E-like slides of three diagnoses (normal,
/// glandular and solid carcinoma), written as pyramidal JPEG-tiled TIFFs that OpenSlide opens, each with
/// its tumour and tissue masks as ground truth, plus <c>labels.csv</c> in CLAM's format
/// (<c>case_id,slide_id,label</c>, with an extra ordinal <c>grade</c> column).
/// </summary>
public static class SyntheticCohort
{
    /// <summary>The specs of a cohort: deterministic per seed. About a third of the cases have two slides.</summary>
    public static IReadOnlyList<SyntheticSlideSpec> Plan(SyntheticCohortOptions options)
    {
        options.Validate();
        var specs = new List<SyntheticSlideSpec>();
        var subtypes = Enum.GetValues<TissueSubtype>();
        ulong seed = options.Seed;
        for (int caseIndex = 0; specs.Count < options.Slides; caseIndex++)
        {
            // Labels rotate through the subtypes in a seeded order so every class is represented.
            int block = caseIndex / subtypes.Length;
            var order = subtypes.OrderBy(s => Hash(seed, 100, block, (int)s)).ToArray();
            var subtype = order[caseIndex % subtypes.Length];
            double burden = subtype == TissueSubtype.Normal ? 0 : 0.1 + 0.5 * Unit(seed, 101, caseIndex);
            double atypia = subtype == TissueSubtype.Normal ? 0 : Unit(seed, 102, caseIndex);
            int grade = subtype == TissueSubtype.Normal ? 0 : GradeOf(burden, atypia);
            int slidesInCase = Unit(seed, 103, caseIndex) < 1.0 / 3 ? 2 : 1;
            string caseId = $"case-{caseIndex + 1:D3}";
            for (int s = 0; s < slidesInCase && specs.Count < options.Slides; s++)
            {
                string slideId = $"slide-{specs.Count + 1:D3}";
                // Slides of one case share the diagnosis; their burden varies a little between blocks.
                double slideBurden = burden == 0 ? 0 : Math.Clamp(burden * (0.8 + 0.4 * Unit(seed, 104, specs.Count)), 0.05, 0.7);
                specs.Add(new SyntheticSlideSpec(slideId, caseId, Hash(seed, 105, specs.Count), options.Width, options.Height,
                    options.Mpp, subtype, slideBurden, atypia, grade) { Coarse = options.Coarse });
            }
        }
        return specs;
    }

    /// <summary>Grade 1-3 for tumours: half from how much tumour there is, half from how atypical its nuclei are.</summary>
    public static int GradeOf(double burden, double atypia)
    {
        double burdenScore = Math.Clamp((burden - 0.1) / 0.5, 0, 1);
        return 1 + (int)Math.Min(2, Math.Floor(3 * (0.5 * burdenScore + 0.5 * atypia)));
    }

    /// <summary>
    /// Writes the cohort into <paramref name="outputDir"/>: <c>slides/&lt;id&gt;.tif</c> with its masks and
    /// truth JSON beside it, and <c>labels.csv</c>. Slides already written are kept (all outputs are atomic),
    /// so an interrupted run resumes.
    /// </summary>
    public static IReadOnlyList<SyntheticSlideSpec> Generate(SyntheticCohortOptions options, string outputDir,
        IProgress<(string SlideId, double Fraction)>? progress = null)
    {
        var specs = Plan(options);
        string slidesDir = Path.Combine(outputDir, "slides");
        Directory.CreateDirectory(slidesDir);
        foreach (var spec in specs)
        {
            string tif = Path.Combine(slidesDir, spec.SlideId + ".tif");
            string truth = Path.Combine(slidesDir, spec.SlideId + ".json");
            if (File.Exists(tif) && File.Exists(truth) && MatchesSpec(truth, spec)) { progress?.Report((spec.SlideId, 1)); continue; }
            WriteSlide(spec, slidesDir, options.JpegQuality, f => progress?.Report((spec.SlideId, f)));
        }
        if (options.NucleiRegions > 0)
            foreach (var spec in specs)
                SyntheticNucleiTruth.Write(spec, Path.Combine(slidesDir, spec.SlideId + ".tif"), Path.Combine(outputDir, "nuclei-truth"),
                    options.NucleiRegions, options.NucleiRegionSize);
        if (options.Captions > 0)
            SyntheticCaptions.Write(specs, slidesDir, Path.Combine(outputDir, "captions"), options.Captions, options.CaptionSize);
        var csv = new StringBuilder("case_id,slide_id,label,grade\n");
        foreach (var s in specs) csv.Append(CultureInfo.InvariantCulture, $"{s.CaseId},{s.SlideId},{s.Label},{s.Grade}\n");
        AtomicFile.WriteAllText(Path.Combine(outputDir, "labels.csv"), csv.ToString());
        return specs;
    }

    static bool MatchesSpec(string truthPath, SyntheticSlideSpec spec)
    {
        try
        {
            var t = JsonSerializer.Deserialize<SyntheticSlideTruth>(File.ReadAllText(truthPath));
            return t is not null && t.Width == spec.Width && t.Height == spec.Height && t.Mpp == spec.Mpp && t.Label == spec.Label
                && t.CaseId == spec.CaseId;
        }
        catch (JsonException) { return false; }
    }

    /// <summary>Mask downsample: the smallest power of two that keeps the mask within 2048 px per side.</summary>
    public static int MaskDownsampleFor(int width, int height)
    {
        int d = 1;
        while (Math.Max(width, height) / d > 2048) d *= 2;
        return d;
    }

    /// <summary>Renders one slide, streaming rows of tiles into the pyramid writer; memory holds one tile row per level.</summary>
    public static void WriteSlide(SyntheticSlideSpec spec, string dir, int jpegQuality = 90, Action<double>? progress = null)
    {
        var tissue = new SyntheticTissue(spec);
        string description = $"Histo synthetic H&E slide {spec.SlideId}; label={spec.Label}; grade={spec.Grade}; seed={spec.Seed}";
        using (var writer = new PyramidTiffWriter(Path.Combine(dir, spec.SlideId + ".tif"), spec.Width, spec.Height, spec.Mpp,
            description, jpegQuality: jpegQuality))
        {
            int tile = writer.TileSize;
            for (int y0 = 0; y0 < spec.Height; y0 += tile)
            {
                int rows = Math.Min(tile, spec.Height - y0);
                var strip = new RgbaImage(spec.Width, rows);
                // Render in vertical bands so both cores work on one strip.
                int band = 512;
                int bands = (spec.Width + band - 1) / band;
                Parallel.For(0, bands, b =>
                {
                    int x0 = b * band, w = Math.Min(band, spec.Width - x0);
                    var buffer = new byte[w * rows * 4];
                    tissue.Render(x0, y0, w, rows, buffer);
                    for (int r = 0; r < rows; r++)
                        buffer.AsSpan(r * w * 4, w * 4).CopyTo(strip.Pixels.AsSpan((r * spec.Width + x0) * 4));
                });
                writer.WriteLevel0Rows(strip);
                progress?.Invoke((double)(y0 + rows) / spec.Height);
            }
            writer.Finish();
        }
        // Ground truth at a bounded resolution, evaluated at mask-pixel centres.
        int md = MaskDownsampleFor(spec.Width, spec.Height);
        int mw = (spec.Width + md - 1) / md, mh = (spec.Height + md - 1) / md;
        var tumourMask = new RgbaImage(mw, mh);
        var tissueMask = new RgbaImage(mw, mh);
        Parallel.For(0, mh, my =>
        {
            double v = (my + 0.5) * md * spec.Mpp;
            for (int mx = 0; mx < mw; mx++)
            {
                double u = (mx + 0.5) * md * spec.Mpp;
                byte t = tissue.InTissue(u, v) ? (byte)255 : (byte)0;
                byte c = t != 0 && tissue.InTumour(u, v) ? (byte)255 : (byte)0;
                int o = (my * mw + mx) * 4;
                tissueMask.Pixels[o] = tissueMask.Pixels[o + 1] = tissueMask.Pixels[o + 2] = t; tissueMask.Pixels[o + 3] = 255;
                tumourMask.Pixels[o] = tumourMask.Pixels[o + 1] = tumourMask.Pixels[o + 2] = c; tumourMask.Pixels[o + 3] = 255;
            }
        });
        string tumourName = spec.SlideId + ".tumor-mask.png", tissueName = spec.SlideId + ".tissue-mask.png";
        tumourMask.Save(Path.Combine(dir, tumourName));
        tissueMask.Save(Path.Combine(dir, tissueName));
        var truth = new SyntheticSlideTruth(spec.SlideId, spec.CaseId, spec.Label, spec.Grade, spec.TumourBurden, spec.Atypia,
            spec.Width, spec.Height, spec.Mpp, md, tumourName, tissueName);
        // The truth file is written last: its presence marks the slide as complete.
        AtomicFile.WriteAllText(Path.Combine(dir, spec.SlideId + ".json"), JsonSerializer.Serialize(truth,
            new JsonSerializerOptions { WriteIndented = true }));
    }
}
