using static Histo.Synthesis.ProceduralNoise;

namespace Histo.Synthesis;

/// <summary>Slide-level diagnosis of a synthetic slide: the subtype label of the cohort.</summary>
public enum TissueSubtype
{
    /// <summary>Tumour-free: stroma, lymphocytes and a few regular glands.</summary>
    Normal,
    /// <summary>Adenocarcinoma-like: crowded, irregular glands lined by stratified, elongated nuclei.</summary>
    Glandular,
    /// <summary>Squamous-like: solid nests of polygonal cells with large vesicular, pleomorphic nuclei and keratin pearls.</summary>
    Solid,
}

/// <summary>What one synthetic slide shows; every structure follows from <see cref="Seed"/>.</summary>
/// <param name="TumourBurden">Fraction of the tissue area covered by tumour (0 for normal slides).</param>
/// <param name="Atypia">Nuclear atypia in [0, 1]: nuclear size, pleomorphism and hyperchromasia.</param>
/// <param name="Grade">Ordinal grade 0-3: 0 without tumour, then driven by burden and atypia.</param>
/// <summary>Nucleus types as CoNSeP's four merged classes (HoVer-Net): other, inflammatory, epithelial, spindle-shaped.</summary>
public enum NucleusType : byte { None = 0, Other = 1, Inflammatory = 2, Epithelial = 3, Spindle = 4 }

public sealed record SyntheticSlideSpec(string SlideId, string CaseId, ulong Seed, int Width, int Height, double Mpp,
    TissueSubtype Subtype, double TumourBurden, double Atypia, int Grade)
{
    /// <summary>Render tissue texture without cells: several times faster, for size and memory benchmarks.</summary>
    public bool Coarse { get; init; }

    public string Label => Subtype.ToString().ToLowerInvariant();
}

/// <summary>
/// The procedural tissue of one synthetic slide, in microns so that it looks the same at any scan
/// resolution. Geometry (tissue fragments, tumour regions) and appearance (haematoxylin and eosin
/// concentrations per point) are pure functions of the spec, so tiles render independently.
/// Colour follows the Beer-Lambert model of bright-field H&amp;E: I = I0 exp(-(c_H OD_H + c_E OD_E)),
/// with H&amp;E stain vectors near Macenko et al.'s reference (ISBI 2009) perturbed per slide, so colour varies
/// between slides independently of the diagnosis.
/// </summary>
public sealed class SyntheticTissue
{
    /// <summary>A star-shaped blob: radius(theta) = R (1 + sum_k a_k cos(k theta + phi_k) + roughness).</summary>
    sealed class Blob
    {
        public double Cx, Cy, R, MaxR, MinR;
        public double[] Amp = [], Phase = [];
        public ulong Seed;
        public double Roughness;

        public bool Contains(double u, double v)
        {
            double dx = u - Cx, dy = v - Cy, d2 = dx * dx + dy * dy;
            if (d2 > MaxR * MaxR) return false;
            if (d2 < MinR * MinR) return true;
            double theta = Math.Atan2(dy, dx);
            double f = 1;
            for (int k = 0; k < Amp.Length; k++) f += Amp[k] * Math.Cos((k + 2) * theta + Phase[k]);
            f += Roughness * (Angular(Seed, theta, 96) - 0.5);
            return d2 < R * R * f * f;
        }
    }

    readonly SyntheticSlideSpec _spec;
    readonly List<Blob> _fragments = new(), _tumours = new();
    readonly double[] _odH = new double[3], _odE = new double[3];
    readonly double _background, _stainScaleH, _stainScaleE;
    readonly ulong _seed;

    public SyntheticSlideSpec Spec => _spec;

    public SyntheticTissue(SyntheticSlideSpec spec)
    {
        _spec = spec;
        _seed = spec.Seed;
        double widthUm = spec.Width * spec.Mpp, heightUm = spec.Height * spec.Mpp;
        // Tissue fragments side by side, like sections on a glass slide.
        int fragments = 1 + (int)(Unit(_seed, 1) * 3);
        double column = widthUm / fragments;
        for (int f = 0; f < fragments; f++)
        {
            double r = 0.4 * Math.Min(column, heightUm) * (0.85 + 0.15 * Unit(_seed, 2, f));
            double cx = column * (f + 0.5) + (Unit(_seed, 3, f) - 0.5) * 0.1 * column;
            double cy = heightUm * (0.5 + (Unit(_seed, 4, f) - 0.5) * 0.15);
            _fragments.Add(MakeBlob(cx, cy, r, 0.28, Hash(_seed, 5, f), 0.06));
        }
        // Tumour regions inside the tissue, sized to the requested burden.
        if (spec.Subtype != TissueSubtype.Normal)
        {
            double tissueArea = _fragments.Sum(b => Math.PI * b.R * b.R);
            int regions = 1 + (int)(Unit(_seed, 6) * 3);
            double r = Math.Sqrt(spec.TumourBurden * tissueArea / regions / Math.PI);
            for (int t = 0, attempt = 0; t < regions && attempt < 1000; attempt++)
            {
                var host = _fragments[(int)(Unit(_seed, 7, attempt) * _fragments.Count)];
                double angle = Unit(_seed, 8, attempt) * 2 * Math.PI, dist = Math.Sqrt(Unit(_seed, 9, attempt)) * host.MinR * 0.8;
                double cx = host.Cx + dist * Math.Cos(angle), cy = host.Cy + dist * Math.Sin(angle);
                if (!InTissue(cx, cy)) continue;
                _tumours.Add(MakeBlob(cx, cy, r, 0.3, Hash(_seed, 10, t), 0.1));
                t++;
            }
        }
        // Per-slide stain: perturbed stain vectors, stain amounts and illumination (scanner and lab variation).
        // Haematoxylin: Macenko's reference vector. Eosin: between Macenko's and Ruifrok's, so that stroma keeps
        // blue well above green (B - G of 35-55 at moderate stain, as measured on the real slides in
        // ../shared/data), which is what separates eosin from red marker ink.
        double[] h = [0.5626, 0.7201, 0.4062], e = [0.10, 0.90, 0.40];
        for (int c = 0; c < 3; c++)
        {
            h[c] = Math.Max(0.02, h[c] + (Unit(_seed, 11, c) - 0.5) * 0.16);
            e[c] = Math.Max(0.02, e[c] + (Unit(_seed, 12, c) - 0.5) * 0.08);
        }
        double nh = Math.Sqrt(h.Sum(x => x * x)), ne = Math.Sqrt(e.Sum(x => x * x));
        for (int c = 0; c < 3; c++) { _odH[c] = h[c] / nh; _odE[c] = e[c] / ne; }
        _stainScaleH = 0.8 + 0.4 * Unit(_seed, 13);
        _stainScaleE = 0.75 + 0.5 * Unit(_seed, 14);
        _background = 236 + 10 * Unit(_seed, 15);
    }

    Blob MakeBlob(double cx, double cy, double r, double wobble, ulong seed, double roughness)
    {
        var amp = new double[5];
        var phase = new double[5];
        for (int k = 0; k < 5; k++)
        {
            amp[k] = wobble * Unit(seed, 1, k) / (k + 1.5);
            phase[k] = Unit(seed, 2, k) * 2 * Math.PI;
        }
        double bound = amp.Sum() + roughness / 2;
        return new Blob { Cx = cx, Cy = cy, R = r, Amp = amp, Phase = phase, Seed = seed, Roughness = roughness, MaxR = r * (1 + bound), MinR = r * Math.Max(0, 1 - bound) };
    }

    /// <summary>Ground truth: is the point (microns) on tissue?</summary>
    public bool InTissue(double u, double v)
    {
        foreach (var f in _fragments) if (f.Contains(u, v)) return true;
        return false;
    }

    /// <summary>Ground truth: is the point (microns) on tumour?</summary>
    public bool InTumour(double u, double v)
    {
        foreach (var t in _tumours) if (t.Contains(u, v)) return InTissue(u, v);
        return false;
    }

    /// <summary>Whether a disc (microns) lies inside the tissue, checked at its centre and 12 points on its rim.</summary>
    bool DiscInTissue(double cx, double cy, double r)
    {
        if (!InTissue(cx, cy)) return false;
        for (int i = 0; i < 12; i++)
            if (!InTissue(cx + r * Math.Cos(i * Math.PI / 6), cy + r * Math.Sin(i * Math.PI / 6))) return false;
        return true;
    }

    /// <summary>True when no tissue fragment reaches into the rectangle (microns): its pixels are all glass.</summary>
    public bool RectIsBackground(double u0, double v0, double u1, double v1)
    {
        foreach (var f in _fragments)
        {
            double dx = Math.Max(Math.Max(u0 - f.Cx, 0), f.Cx - u1), dy = Math.Max(Math.Max(v0 - f.Cy, 0), f.Cy - v1);
            if (dx * dx + dy * dy <= f.MaxR * f.MaxR) return false;
        }
        return true;
    }

    /// <summary>The glass colour (uniform, so background tiles compress to one cached JPEG).</summary>
    public byte BackgroundLevel => (byte)Math.Round(_background);

    /// <summary>Renders level-0 pixels [x0, x0+width) x [y0, y0+height) into an RGBA buffer.</summary>
    public void Render(long x0, long y0, int width, int height, Span<byte> rgba)
    {
        double mpp = _spec.Mpp;
        byte bg = BackgroundLevel;
        for (int y = 0; y < height; y++)
        {
            double v = (y0 + y + 0.5) * mpp;
            var row = rgba.Slice(y * width * 4, width * 4);
            if (RectIsBackground(x0 * mpp, v - mpp, (x0 + width) * mpp, v + mpp))
            {
                for (int x = 0; x < width; x++) { row[4 * x] = bg; row[4 * x + 1] = bg; row[4 * x + 2] = bg; row[4 * x + 3] = 255; }
                continue;
            }
            for (int x = 0; x < width; x++)
            {
                double u = (x0 + x + 0.5) * mpp;
                int o = 4 * x;
                if (!InTissue(u, v)) { row[o] = bg; row[o + 1] = bg; row[o + 2] = bg; row[o + 3] = 255; continue; }
                var stain = Stains(u, v);
                double ch = stain.H, ce = stain.E;
                double grain = (Unit(_seed ^ 0x5151, x0 + x, y0 + y) - 0.5) * 6;
                for (int c = 0; c < 3; c++)
                {
                    double od = ch * _stainScaleH * _odH[c] + ce * _stainScaleE * _odE[c];
                    row[o + c] = (byte)Math.Clamp(_background * Math.Exp(-od) + grain, 0, 255);
                }
                row[o + 3] = 255;
            }
        }
    }

    /// <summary>
    /// Haematoxylin and eosin concentrations at a tissue point (microns) and the nucleus the point lies in: a key unique to
    /// that nucleus (0 for none) and its CoNSeP type, so that the same function paints a nucleus and labels it.
    /// </summary>
    readonly record struct Stain(double H, double E, ulong Nucleus = 0, NucleusType Type = NucleusType.None)
    {
        public static implicit operator Stain((double H, double E) s) => new(s.H, s.E);
    }

    /// <summary>Lymphocyte nuclei are discs of this radius (microns).</summary>
    public const double LymphocyteRadius = 3.2;

    /// <summary>
    /// The nuclei of level-0 pixels [x0, x0+width) x [y0, y0+height), as <see cref="Render"/> paints them: a label map (0
    /// background, 1..N in the order first met, row by row) and the type of each nucleus (index 0 unused).
    /// </summary>
    public (int[] Labels, NucleusType[] Types) NucleusLabels(long x0, long y0, int width, int height)
    {
        var labels = new int[width * height];
        var ids = new Dictionary<ulong, int>();
        var types = new List<NucleusType> { NucleusType.None };
        if (_spec.Coarse) return (labels, [.. types]);
        double mpp = _spec.Mpp;
        for (int y = 0; y < height; y++)
        {
            double v = (y0 + y + 0.5) * mpp;
            if (RectIsBackground(x0 * mpp, v - mpp, (x0 + width) * mpp, v + mpp)) continue;
            for (int x = 0; x < width; x++)
            {
                double u = (x0 + x + 0.5) * mpp;
                if (!InTissue(u, v)) continue;
                var stain = Stains(u, v);
                if (stain.Nucleus == 0) continue;
                if (!ids.TryGetValue(stain.Nucleus, out int id))
                {
                    ids[stain.Nucleus] = id = ids.Count + 1;
                    types.Add(stain.Type);
                }
                labels[y * width + x] = id;
            }
        }
        return (labels, [.. types]);
    }

    /// <summary>Haematoxylin and eosin concentrations at a tissue point (microns).</summary>
    Stain Stains(double u, double v)
    {
        bool tumour = false;
        foreach (var t in _tumours) if (t.Contains(u, v)) { tumour = true; break; }
        if (_spec.Coarse)
        {
            double texture = Value(_seed ^ 0xC0A, u / 30, v / 30);
            return tumour ? (0.45 + 0.3 * texture, 0.35) : (0.08, 0.35 + 0.35 * texture);
        }
        if (tumour)
            return _spec.Subtype == TissueSubtype.Glandular ? GlandularTumour(u, v) : SolidTumour(u, v);
        var gland = NormalGland(u, v);
        return gland ?? Stroma(u, v, cellular: true);
    }

    double FibreAngle(double u, double v) => 2 * Math.PI * Fractal(_seed ^ 0xF1B, u / 500, v / 500, 2);

    /// <summary>Collagenous stroma: wavy eosinophilic fibres, spindle fibroblast nuclei, lymphocytes.</summary>
    Stain Stroma(double u, double v, bool cellular)
    {
        double phi = FibreAngle(u, v), cos = Math.Cos(phi), sin = Math.Sin(phi);
        // Collagen bundles: ridged, domain-warped noise stretched along the local fibre direction.
        double wu = u + 25 * Value(_seed ^ 0xFA, u / 60, v / 60), wv = v + 25 * Value(_seed ^ 0xFC, u / 60, v / 60);
        double along = (wu * cos + wv * sin) / 30, across = (-wu * sin + wv * cos) / 5;
        double fibre = 1 - Math.Abs(2 * Value(_seed ^ 0xFB, along, across) - 1);
        double loose = SmoothStep(0.55, 0.8, Fractal(_seed ^ 0x1005E, u / 180, v / 180, 2));
        double e = (0.3 + 0.45 * fibre) * (1 - 0.55 * loose);
        double h = 0.05;
        // Fibroblasts: spindle nuclei aligned with the fibres (about 12 x 3 microns).
        const double cell = 24;
        long ci = (long)Math.Floor(u / cell), cj = (long)Math.Floor(v / cell);
        for (long i = ci - 1; i <= ci + 1; i++)
            for (long j = cj - 1; j <= cj + 1; j++)
            {
                ulong k = Hash(_seed ^ 0xF1B0, i, j);
                if (Unit(k) > (cellular ? 0.35 : 0.2)) continue;
                double nx = (i + 0.15 + 0.7 * Unit(k, 1)) * cell, ny = (j + 0.15 + 0.7 * Unit(k, 2)) * cell;
                double dx = u - nx, dy = v - ny;
                double a = (dx * cos + dy * sin) / (5.5 + 2 * Unit(k, 3)), b = (-dx * sin + dy * cos) / 1.5;
                if (a * a + b * b < 1) return new Stain(0.85 * Chromatin(u, v), 0.15, Hash(k, 0xF1), NucleusType.Spindle);
            }
        // Lymphocytes: small, round, very dark, in clusters.
        double density = 0.03 + 0.45 * SmoothStep(0.62, 0.8, Fractal(_seed ^ 0x1F, u / 350, v / 350, 2));
        const double lcell = 13;
        ci = (long)Math.Floor(u / lcell); cj = (long)Math.Floor(v / lcell);
        for (long i = ci - 1; i <= ci + 1; i++)
            for (long j = cj - 1; j <= cj + 1; j++)
            {
                ulong k = Hash(_seed ^ 0x1A, i, j);
                if (Unit(k) > density) continue;
                double nx = (i + 0.25 + 0.5 * Unit(k, 1)) * lcell, ny = (j + 0.25 + 0.5 * Unit(k, 2)) * lcell;
                double dx = u - nx, dy = v - ny;
                if (dx * dx + dy * dy < LymphocyteRadius * LymphocyteRadius)
                    return new Stain(1.35 * Chromatin(u, v), 0.1, Hash(k, 0x1A), NucleusType.Inflammatory);
            }
        return (h, e);
    }

    double Chromatin(double u, double v) => 0.8 + 0.4 * Value(_seed ^ 0xC4, u / 1.2, v / 1.2);

    /// <summary>Regular glands of normal mucosa: round lumen, one layer of small basal nuclei.</summary>
    Stain? NormalGland(double u, double v)
    {
        const double cell = 320;
        long ci = (long)Math.Floor(u / cell), cj = (long)Math.Floor(v / cell);
        for (long i = ci - 1; i <= ci + 1; i++)
            for (long j = cj - 1; j <= cj + 1; j++)
            {
                ulong k = Hash(_seed ^ 0x61A, i, j);
                if (Unit(k) > 0.4) continue;
                double gx = (i + 0.3 + 0.4 * Unit(k, 1)) * cell, gy = (j + 0.3 + 0.4 * Unit(k, 2)) * cell;
                double lumen = 7 + 6 * Unit(k, 3), wall = 22;
                double dx = u - gx, dy = v - gy, d = Math.Sqrt(dx * dx + dy * dy);
                if (d > lumen + wall) continue;
                // Glands lie wholly inside the tissue, so lumens are enclosed like real ones.
                if (!DiscInTissue(gx, gy, lumen + wall)) continue;
                if (d < lumen) return (0.02, 0.06);
                // Evenly spaced basal nuclei near the outer edge of the epithelium.
                double ringR = lumen + wall * 0.78;
                int count = Math.Max(6, (int)(2 * Math.PI * ringR / 7));
                double step = 2 * Math.PI / count, theta = Math.Atan2(dy, dx);
                long n = (long)Math.Round(theta / step);
                double nt = n * step, nx = gx + ringR * Math.Cos(nt), ny = gy + ringR * Math.Sin(nt);
                double rx = u - nx, ry = v - ny;
                double radial = (rx * Math.Cos(nt) + ry * Math.Sin(nt)) / 3.2, tangential = (-rx * Math.Sin(nt) + ry * Math.Cos(nt)) / 2.2;
                if (radial * radial + tangential * tangential < 1)
                    return new Stain(0.9 * Chromatin(u, v), 0.15, Hash(k, n, 0x61A), NucleusType.Epithelial);
                // Pale mucinous (goblet-cell) cytoplasm between the nuclei and the lumen.
                return (0.16 + 0.1 * Value(k, u / 3, v / 3), 0.3);
            }
        return null;
    }

    /// <summary>Adenocarcinoma-like: back-to-back irregular glands, stratified elongated hyperchromatic nuclei.</summary>
    Stain GlandularTumour(double u, double v)
    {
        double atypia = _spec.Atypia;
        const double cell = 90;
        long ci = (long)Math.Floor(u / cell), cj = (long)Math.Floor(v / cell);
        double best = double.MaxValue;
        Stain? result = null;
        for (long i = ci - 1; i <= ci + 1; i++)
            for (long j = cj - 1; j <= cj + 1; j++)
            {
                ulong k = Hash(_seed ^ 0x6A, i, j);
                double gx = (i + 0.2 + 0.6 * Unit(k, 1)) * cell, gy = (j + 0.2 + 0.6 * Unit(k, 2)) * cell;
                double dx = u - gx, dy = v - gy, d = Math.Sqrt(dx * dx + dy * dy);
                double theta = Math.Atan2(dy, dx);
                double irregular = 1 + (0.25 + 0.35 * atypia) * (Angular(k, theta, 7) - 0.5);
                double lumen = (9 + 12 * Unit(k, 3)) * irregular, wall = (13 + 9 * Unit(k, 4)) * (1 + 0.4 * atypia);
                double rel = d / (lumen + wall);
                if (rel >= 1 || rel >= best) continue;
                best = rel;
                // A gland cut by the tissue edge shows no open lumen (it would read as glass).
                if (d < lumen && !DiscInTissue(gx, gy, lumen + 2)) { result = (0.3, 0.45); continue; }
                if (d < lumen)
                {
                    // Lumen with a little eosinophilic secretion and necrotic debris.
                    double debris = SmoothStep(0.62, 0.85, Fractal(k, u / 6, v / 6, 2));
                    result = (0.03 + 0.35 * debris * atypia, 0.1 + 0.35 * debris);
                    continue;
                }
                // Two to three layers of nuclei elongated perpendicular to the lumen.
                double step = 4.5 / Math.Max(lumen, 1);
                long n = (long)Math.Round(theta / step);
                result = (0.22, 0.45); // amphophilic cytoplasm
                for (long m = n - 1; m <= n + 1; m++)
                    for (int layer = 0; layer < 3; layer++)
                    {
                        ulong q = Hash(k, m, layer);
                        if (layer == 2 && Unit(q) > atypia) continue;
                        double nt = m * step + (Unit(q, 1) - 0.5) * step * 0.6;
                        double nr = lumen + wall * (0.25 + 0.28 * layer) + (Unit(q, 2) - 0.5) * 3;
                        double nx = gx + nr * Math.Cos(nt), ny = gy + nr * Math.Sin(nt);
                        double rx = u - nx, ry = v - ny;
                        double size = 1 + atypia * (0.1 + 0.4 * Unit(q, 3));
                        double radial = (rx * Math.Cos(nt) + ry * Math.Sin(nt)) / (3.6 * size), tangential = (-rx * Math.Sin(nt) + ry * Math.Cos(nt)) / (1.7 * size);
                        if (radial * radial + tangential * tangential < 1)
                        {
                            result = new Stain((1.05 + 0.35 * atypia) * Chromatin(u, v), 0.15, Hash(q, 0x6A), NucleusType.Epithelial);
                            m = n + 2;
                            break;
                        }
                    }
            }
        return result ?? Stroma(u, v, cellular: false);
    }

    /// <summary>Squamous-like: nests of polygonal cells (Voronoi), large vesicular pleomorphic nuclei with nucleoli, keratin pearls.</summary>
    Stain SolidTumour(double u, double v)
    {
        double atypia = _spec.Atypia;
        // Thin stromal septa split the sheet into nests.
        double septum = Math.Abs(Fractal(_seed ^ 0x5E, u / 160, v / 160, 2) - 0.5);
        if (septum < 0.025) return Stroma(u, v, cellular: false);
        // Keratin pearls: concentric lamellae of bright eosin.
        const double pearlCell = 230;
        long pi = (long)Math.Floor(u / pearlCell), pj = (long)Math.Floor(v / pearlCell);
        for (long i = pi - 1; i <= pi + 1; i++)
            for (long j = pj - 1; j <= pj + 1; j++)
            {
                ulong k = Hash(_seed ^ 0x9EA, i, j);
                if (Unit(k) > 0.35) continue;
                double px = (i + 0.3 + 0.4 * Unit(k, 1)) * pearlCell, py = (j + 0.3 + 0.4 * Unit(k, 2)) * pearlCell;
                double r = 22 + 18 * Unit(k, 3);
                double d = Math.Sqrt((u - px) * (u - px) + (v - py) * (v - py));
                if (d < r) return (0.03, 0.95 + 0.2 * Math.Sin(2 * Math.PI * d / 4.5));
            }
        const double cell = 16;
        long ci = (long)Math.Floor(u / cell), cj = (long)Math.Floor(v / cell);
        double f1 = double.MaxValue, f2 = double.MaxValue;
        double cx = 0, cy = 0;
        ulong ck = 0;
        for (long i = ci - 1; i <= ci + 1; i++)
            for (long j = cj - 1; j <= cj + 1; j++)
            {
                ulong k = Hash(_seed ^ 0x50, i, j);
                double x = (i + 0.1 + 0.8 * Unit(k, 1)) * cell, y = (j + 0.1 + 0.8 * Unit(k, 2)) * cell;
                double d = Math.Sqrt((u - x) * (u - x) + (v - y) * (v - y));
                if (d < f1) { f2 = f1; f1 = d; cx = x; cy = y; ck = k; }
                else if (d < f2) f2 = d;
            }
        double rn = (3.4 + 2.6 * Unit(ck, 3) * (0.4 + atypia)) * (Unit(ck, 4) < 0.05 * atypia ? 1.7 : 1);
        double angle = Unit(ck, 5) * Math.PI, ecc = 1 + 0.4 * atypia * Unit(ck, 6);
        double dx = u - cx, dy = v - cy;
        double a = (dx * Math.Cos(angle) + dy * Math.Sin(angle)) / (rn * ecc), b = (-dx * Math.Sin(angle) + dy * Math.Cos(angle)) / rn;
        double rel = Math.Sqrt(a * a + b * b);
        if (rel < 1)
        {
            // Vesicular nucleus: chromatin along the membrane, pale centre, one prominent nucleolus.
            double nox = cx + 0.3 * rn * (Unit(ck, 7) - 0.5), noy = cy + 0.3 * rn * (Unit(ck, 8) - 0.5);
            ulong nucleus = Hash(ck, 0x50);
            if ((u - nox) * (u - nox) + (v - noy) * (v - noy) < 0.8 * 0.8) return new Stain(1.1, 0.7, nucleus, NucleusType.Epithelial);
            return new Stain((0.5 + 0.7 * SmoothStep(0.55, 0.95, rel) + 0.2 * atypia) * Chromatin(u, v), 0.2, nucleus,
                NucleusType.Epithelial);
        }
        if (f2 - f1 < 0.9) return (0.2, 0.85); // cell membrane / intercellular bridge
        return (0.08, 0.72); // glassy eosinophilic cytoplasm
    }
}
