namespace Histo.Evaluation;

/// <summary>
/// Minimum-cost one-to-one assignment on a rectangular cost matrix, as SciPy's linear_sum_assignment: min(rows, columns)
/// pairs whose total cost is smallest, returned sorted by row. The Hungarian method with potentials and shortest augmenting
/// paths (Kuhn 1955, Munkres 1957; the O(n^2 m) form of Jonker and Volgenant), exact on any finite costs.
/// </summary>
public static class LinearAssignment
{
    public static (int[] Rows, int[] Columns) Solve(double[,] cost)
    {
        int n = cost.GetLength(0), m = cost.GetLength(1);
        if (n == 0 || m == 0) return ([], []);
        if (n > m)
        {
            // More rows than columns: solve the transpose, then swap back.
            var transposed = new double[m, n];
            for (int i = 0; i < n; i++) for (int j = 0; j < m; j++) transposed[j, i] = cost[i, j];
            var (r, c) = Solve(transposed);
            var pairs = c.Zip(r).OrderBy(p => p.First).ToArray();
            return (pairs.Select(p => p.First).ToArray(), pairs.Select(p => p.Second).ToArray());
        }
        // Rows 1..n, columns 1..m; column 0 is the virtual start. u, v: potentials; match[j]: the row holding column j.
        var u = new double[n + 1];
        var v = new double[m + 1];
        var match = new int[m + 1];
        var way = new int[m + 1];
        for (int i = 1; i <= n; i++)
        {
            match[0] = i;
            int j0 = 0;
            var minv = new double[m + 1];
            Array.Fill(minv, double.PositiveInfinity);
            var used = new bool[m + 1];
            do
            {
                used[j0] = true;
                int i0 = match[j0], j1 = 0;
                double delta = double.PositiveInfinity;
                for (int j = 1; j <= m; j++)
                {
                    if (used[j]) continue;
                    double reduced = cost[i0 - 1, j - 1] - u[i0] - v[j];
                    if (reduced < minv[j]) { minv[j] = reduced; way[j] = j0; }
                    if (minv[j] < delta) { delta = minv[j]; j1 = j; }
                }
                for (int j = 0; j <= m; j++)
                    if (used[j]) { u[match[j]] += delta; v[j] -= delta; }
                    else minv[j] -= delta;
                j0 = j1;
            } while (match[j0] != 0);
            do
            {
                int j1 = way[j0];
                match[j0] = match[j1];
                j0 = j1;
            } while (j0 != 0);
        }
        var result = new List<(int Row, int Column)>();
        for (int j = 1; j <= m; j++) if (match[j] != 0) result.Add((match[j] - 1, j - 1));
        result.Sort();
        return (result.Select(p => p.Row).ToArray(), result.Select(p => p.Column).ToArray());
    }
}
